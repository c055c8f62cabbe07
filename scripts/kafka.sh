#!/usr/bin/env bash
# A real Apache Kafka 4.x broker for the conformance suite, from Maven Central
# (Apache publishes no distribution tarball there, so the broker's classpath
# is assembled from org.apache.kafka:kafka_2.13 and its runtime dependencies).
#
#   scripts/kafka.sh install   fetch the jars into .tools/kafka/libs (once)
#   scripts/kafka.sh start     format storage (first time) and start one KRaft
#                              node (broker+controller); waits until it serves
#                              metadata, then prints KAFKA_BOOTSTRAP=host:port
#   scripts/kafka.sh stop      stop the node this script started
#   scripts/kafka.sh status    say whether it runs; exit 1 if not
#   scripts/kafka.sh reset     stop and delete the data directory
#
# Everything lives under .tools/kafka (gitignored): libs/, config/, data/,
# logs/ (server.log, the JVM's stdout/stderr) and kafka.pid. Needs Java 17+
# and Maven. Environment: CLAIMX_KAFKA_VERSION (default below),
# CLAIMX_KAFKA_PORT (29092), CLAIMX_KAFKA_CONTROLLER_PORT (29093),
# CLAIMX_KAFKA_HEAP (512m).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=${CLAIMX_KAFKA_VERSION:-4.1.1}
PORT=${CLAIMX_KAFKA_PORT:-29092}
CPORT=${CLAIMX_KAFKA_CONTROLLER_PORT:-29093}
HEAP=${CLAIMX_KAFKA_HEAP:-512m}
HOME_DIR=$ROOT/.tools/kafka
LIBS=$HOME_DIR/libs
CONF=$HOME_DIR/config
DATA=$HOME_DIR/data
LOGS=$HOME_DIR/logs
PIDF=$HOME_DIR/kafka.pid
CLUSTER_ID=claimxConformance0000w # 22 characters, base64url of 16 bytes

log() { echo "kafka.sh: $*" >&2; }

running() {
	local pid
	pid=$(cat "$PIDF" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

classpath() { find "$LIBS" -name '*.jar' | sort | paste -sd: -; }

install() {
	local t0=$SECONDS
	if [[ -f $LIBS/.claimx-version && $(cat "$LIBS/.claimx-version") == "$VERSION" ]]; then
		log "Kafka $VERSION already installed in $LIBS"
		return 0
	fi
	command -v java >/dev/null || { log "java not found (Kafka 4 needs Java 17+)"; return 1; }
	command -v mvn >/dev/null || { log "mvn not found"; return 1; }
	log "installing Kafka $VERSION from Maven Central into $LIBS"
	rm -rf "$LIBS" "$HOME_DIR/pom"
	mkdir -p "$HOME_DIR/pom"
	# kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool); its
	# pom pulls server, raft, metadata, storage, the coordinators and
	# kafka-clients. Logging is left to the distribution there: Kafka 4 logs
	# through SLF4J 2 to log4j2, so both are added here.
	cat >"$HOME_DIR/pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>claimx.tools</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
	mvn -B -Dstyle.color=never -f "$HOME_DIR/pom/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$LIBS" >"$HOME_DIR/pom/mvn.log" 2>&1 ||
		{ log "maven failed; see $HOME_DIR/pom/mvn.log"; tail -30 "$HOME_DIR/pom/mvn.log" >&2; return 1; }
	# Two SLF4J bindings would make SLF4J pick one at random.
	rm -f "$LIBS"/slf4j-reload4j-*.jar "$LIBS"/slf4j-log4j12-*.jar "$LIBS"/logback-classic-*.jar
	echo "$VERSION" >"$LIBS/.claimx-version"
	log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
}

write_config() {
	mkdir -p "$CONF" "$DATA" "$LOGS"
	cat >"$CONF/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
EOF
	cat >"$CONF/log4j2.xml" <<EOF
<Configuration>
  <Appenders>
    <RollingFile name="file" fileName="$LOGS/server.log" filePattern="$LOGS/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20MB"/>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
EOF
}

# wait_ready: until the broker answers a metadata request (kcat when present,
# else the TCP port plus the "started" line of the server log), 90 s at most.
wait_ready() {
	local i
	for ((i = 0; i < 180; i++)); do
		running || { log "Kafka exited; last lines of $LOGS:"; tail -20 "$LOGS/kafka.out" "$LOGS/server.log" >&2 2>/dev/null; return 1; }
		if command -v kcat >/dev/null; then
			if kcat -b "127.0.0.1:$PORT" -L -m 2 >/dev/null 2>&1; then return 0; fi
		elif port_open "$PORT" && grep -q 'Kafka Server started' "$LOGS/server.log" 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	log "Kafka did not answer on 127.0.0.1:$PORT within 90 s; see $LOGS"
	return 1
}

start() {
	local t0=$SECONDS
	if running; then
		log "already running (pid $(cat "$PIDF"))"
		echo "KAFKA_BOOTSTRAP=127.0.0.1:$PORT"
		return 0
	fi
	[[ -f $LIBS/.claimx-version ]] || { log "not installed: run scripts/kafka.sh install"; return 1; }
	if port_open "$PORT" || port_open "$CPORT"; then
		log "port $PORT or $CPORT is taken by another program; set CLAIMX_KAFKA_PORT / CLAIMX_KAFKA_CONTROLLER_PORT"
		return 1
	fi
	write_config
	local cp
	cp=$(classpath)
	if [[ ! -f $DATA/meta.properties ]]; then
		log "formatting $DATA (cluster id $CLUSTER_ID)"
		java -cp "$cp" -Dlog4j2.configurationFile="$CONF/log4j2.xml" kafka.tools.StorageTool format \
			--config "$CONF/server.properties" --cluster-id "$CLUSTER_ID" --standalone --ignore-formatted >"$LOGS/format.out" 2>&1 ||
			{ log "formatting failed:"; cat "$LOGS/format.out" >&2; return 1; }
	fi
	log "starting Kafka $(cat "$LIBS/.claimx-version") on 127.0.0.1:$PORT (controller $CPORT), logs in $LOGS"
	setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF/log4j2.xml" -Dkafka.logs.dir="$LOGS" \
		-cp "$cp" kafka.Kafka "$CONF/server.properties" >"$LOGS/kafka.out" 2>&1 </dev/null &
	echo $! >"$PIDF"
	wait_ready || return 1
	log "ready in $((SECONDS - t0)) s (pid $(cat "$PIDF"))"
	echo "KAFKA_BOOTSTRAP=127.0.0.1:$PORT"
}

stop() {
	if ! running; then
		log "not running"
		rm -f "$PIDF"
		return 0
	fi
	local pid i
	pid=$(cat "$PIDF")
	# setsid made the JVM its own process-group leader.
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "still running after 30 s; killing"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
	fi
	rm -f "$PIDF"
	log "stopped (pid $pid)"
}

status() {
	if running; then
		echo "running (pid $(cat "$PIDF")) KAFKA_BOOTSTRAP=127.0.0.1:$PORT"
	else
		echo "not running"
		return 1
	fi
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
reset) stop && rm -rf "$DATA" && log "deleted $DATA" ;;
*)
	echo "usage: $0 {install|start|stop|status|reset}" >&2
	exit 2
	;;
esac
