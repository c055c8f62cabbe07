#!/usr/bin/env bash
# Installs the readers of the conformance suite (tests/conformance) on a fresh
# machine, idempotently, under .tools/conformance/ (gitignored):
#
#   venv/    Python venv with tests/conformance/requirements.txt: delta-rs
#            (deltalake), pyarrow, duckdb + its delta extension, pyspark and
#            delta-spark
#   jars/    io.delta:delta-spark_2.13 and its runtime dependencies from Maven
#            Central (Spark's own jars come with pyspark), passed to Spark as
#            spark.jars so no Ivy resolution happens at test time
#
# Needs python3 (3.10+), Java 17 and Maven. The quick suite (`make test`) does
# not use any of it. Prints, on stdout, the two variables the tests read:
#
#   CLAIMX_CONFORMANCE_PYTHON=.../venv/bin/python
#   CLAIMX_SPARK_JARS=<comma-separated jar paths>
#
# (the tests also find both at these default places without the variables).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/.tools/conformance
REQ=$ROOT/tests/conformance/requirements.txt
DELTA_SPARK_VERSION=$(sed -n 's/^delta-spark==//p' "$REQ")
log() { echo "setup-conformance: $*" >&2; }
t0=$SECONDS
mkdir -p "$DIR"

# --------------------------------------------------------------- python ---
stamp=$DIR/venv/.claimx-requirements
if [[ -x $DIR/venv/bin/python && -f $stamp ]] && cmp -s "$stamp" <(cat "$REQ" "$ROOT/tests/requirements.txt"); then
	log "venv up to date ($DIR/venv)"
else
	log "installing $DIR/venv from $REQ (pyspark is a ~400 MB download)"
	rm -rf "$DIR/venv"
	python3 -m venv "$DIR/venv"
	"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
	"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
	cat "$REQ" "$ROOT/tests/requirements.txt" >"$stamp"
	log "venv installed in $((SECONDS - t0)) s"
fi
"$DIR/venv/bin/python" - >&2 <<'EOF'
import importlib.metadata as m
print("setup-conformance: python:", ", ".join(f"{p} {m.version(p)}" for p in
      ["deltalake", "pyarrow", "duckdb", "duckdb-extension-delta", "pyspark", "delta-spark"]))
EOF

# ----------------------------------------------------------- spark jars ---
t1=$SECONDS
jstamp=$DIR/jars/.claimx-version
if [[ -f $jstamp && $(cat "$jstamp") == "$DELTA_SPARK_VERSION" ]]; then
	log "delta-spark $DELTA_SPARK_VERSION jars present ($DIR/jars)"
else
	command -v mvn >/dev/null || { log "mvn not found"; exit 1; }
	log "fetching io.delta:delta-spark_2.13:$DELTA_SPARK_VERSION with Maven"
	rm -rf "$DIR/jars" "$DIR/jars-pom"
	mkdir -p "$DIR/jars-pom"
	cat >"$DIR/jars-pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>claimx.tools</groupId>
  <artifactId>delta-spark-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.delta</groupId>
      <artifactId>delta-spark_2.13</artifactId>
      <version>$DELTA_SPARK_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
	# Only io.delta jars (delta-spark, delta-storage): Spark, Scala and antlr
	# come with pyspark, and a second scala-library would clash with them.
	mvn -B -Dstyle.color=never -f "$DIR/jars-pom/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DincludeGroupIds=io.delta -DoutputDirectory="$DIR/jars" >"$DIR/jars-pom/mvn.log" 2>&1 ||
		{ log "maven failed; see $DIR/jars-pom/mvn.log"; tail -30 "$DIR/jars-pom/mvn.log" >&2; exit 1; }
	echo "$DELTA_SPARK_VERSION" >"$jstamp"
	log "jars fetched in $((SECONDS - t1)) s"
fi
jars=$(find "$DIR/jars" -name '*.jar' | sort | paste -sd, -)
log "ready in $((SECONDS - t0)) s"
echo "CLAIMX_CONFORMANCE_PYTHON=$DIR/venv/bin/python"
echo "CLAIMX_SPARK_JARS=$jars"
