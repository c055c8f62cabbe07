#!/usr/bin/env python3
"""Emulates `docker build` of the repository's Dockerfile without Docker.

    dockerfile_emulate.py REPO WORKDIR [--build-arg K=V ...]

1. Builds the build context as Docker would: every file under REPO minus the
   patterns of REPO/.dockerignore (with `!` exceptions, `*`, `?`, `**`).
2. Checks every COPY/ADD source of the context exists in that context (a source
   left out by .dockerignore fails the real build, so it fails here).
3. Runs the RUN instructions of every stage but the last one, in a directory
   that stands for the stage's file system: absolute paths the stage creates
   (its WORKDIR and COPY destinations, and `/out`) are mapped into it. ARGs
   become environment variables, as in a real build.
4. Lays out the final stage's file system under WORKDIR/rootfs (COPY from the
   context and COPY --from=<stage>), and checks: non-root USER, exec-form
   ENTRYPOINT and CMD, EXPOSE 4195, CMD file arguments and absolute paths of
   ENV values present in the image, the CMD runs every stream of pipelines/,
   and the ENV puts each stream's tables and photos under /data and names
   each file it reads (schemas, mappings) by an absolute path in the image.
5. Prints a JSON summary (rootfs, env, workdir, user, entrypoint, cmd) for the
   shell checks that run the binary.

Exit status 1 with a message for every failed check.
"""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

errors = []


def fail(msg):
    errors.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- parsing
def parse_dockerfile(path):
    """Returns [(instruction, rest, lineno)], continuation lines joined."""
    out = []
    buf, start = "", 0
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (line.strip().startswith("#") or not line.strip()):
                continue
            if buf and line.strip().startswith("#"):
                continue  # comment inside a continued instruction
            if not buf:
                start = n
            if line.rstrip().endswith("\\"):
                buf += line.rstrip()[:-1] + " "
                continue
            buf += line
            ins, _, rest = buf.strip().partition(" ")
            out.append((ins.upper(), rest.strip(), start))
            buf = ""
    if buf:
        fail(f"Dockerfile ends inside a continued instruction (line {start})")
    return out


def split_flags(rest):
    """COPY/ADD flags (--from=, --chown=, ...) and the remaining words."""
    if rest.startswith("["):
        words = json.loads(rest)
        return {}, words
    words = shlex.split(rest)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    return flags, words


def expand(s, args):
    """${VAR}, ${VAR:-default} and $VAR, as the Dockerfile parser does."""
    def rep(m):
        if m.group(1):
            v = args.get(m.group(1))
            return v if v not in (None, "") else (m.group(2) or "")
        return args.get(m.group(3), "")
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", rep, s)


# ------------------------------------------------------------ .dockerignore
def ignore_patterns(repo):
    p = os.path.join(repo, ".dockerignore")
    pats = []
    if os.path.exists(p):
        for line in open(p):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            if neg:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            pats.append((neg, re.compile(glob_to_re(line))))
    return pats


def glob_to_re(pat):
    i, out = 0, "^"
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pat.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pat.find("]", i)
            if j < 0:
                out += re.escape(c)
            else:
                out += "[" + pat[i + 1:j].replace("\\", "\\\\") + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return out + "$"


def excluded(rel, pats):
    """Docker semantics: the last matching pattern wins; a pattern matching a
    parent directory matches everything below it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    res = False
    for neg, rx in pats:
        if any(rx.match(p) for p in prefixes):
            res = not neg
    return res


def build_context(repo, dest, pats):
    has_neg = any(neg for neg, _ in pats)
    n = 0
    for root, dirs, files in os.walk(repo):
        relroot = os.path.relpath(root, repo)
        relroot = "" if relroot == "." else relroot
        keep = []
        for d in dirs:
            rel = f"{relroot}/{d}" if relroot else d
            if excluded(rel, pats) and not has_neg:
                continue
            keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = f"{relroot}/{f}" if relroot else f
            if excluded(rel, pats):
                continue
            src = os.path.join(root, f)
            if os.path.islink(src) and not os.path.exists(src):
                continue
            dst = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
            n += 1
    return n


# ------------------------------------------------------------- file system
def copy_into(src, dst_container, root, workdir):
    """COPY semantics: a directory's contents go into dest; a file goes to
    dest/<name> when dest ends with / (or is a directory), else to dest."""
    if not dst_container.startswith("/"):
        dst_container = os.path.join(workdir, dst_container)
    dst = os.path.join(root, dst_container.lstrip("/"))
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
        shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
    else:
        if dst_container.endswith("/") or os.path.isdir(dst):
            os.makedirs(dst, exist_ok=True)
            dst = os.path.join(dst, os.path.basename(src))
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


# ${VAR:./default} in a stream: a default under ./data/ is where the stream
# stores data, any other a file it reads (relative to the WORKDIR).
PATH_VAR = re.compile(r"\$\{(\w+):(\./[^}]*)\}")


def check_streams(repo, root, cmd, env):
    """The default CMD runs every stream of pipelines/ (a top-level file with
    an input), and for each of them the ENV puts every table and the photos
    on /data (the writable volume; the WORKDIR is read-only for 65532) and
    names every file the stream reads absolutely, present in the image."""
    streams = []
    for p in sorted(glob.glob(os.path.join(repo, "pipelines", "*.yaml"))):
        if p.endswith("_benthos_test.yaml"):
            continue
        if re.search(r"^input:", open(p).read(), re.M):
            streams.append(os.path.basename(p))
    run = [os.path.basename(a) for a in cmd if a.startswith("/etc/claimx-connect/pipelines/") and "*" not in a]
    for st in streams:
        if st not in run:
            fail(f"CMD does not run pipelines/{st} (the default command runs every stream)")
    if "/data" in {v.rstrip("/") for v in env.values()} or any(v.startswith("/data/") for v in env.values()):
        d = os.path.join(root, "data")
        if not os.path.isdir(d):
            fail("ENV puts data under /data, which the image does not have")
    for st in streams:
        for var, default in PATH_VAR.findall(open(os.path.join(repo, "pipelines", st)).read()):
            v = env.get(var)
            if default.startswith("./data/"):
                if not v or not v.startswith("/data/"):
                    fail(f"ENV {var} (pipelines/{st}, default {default}) should be set under /data, got {v!r}")
            elif not v or not v.startswith("/"):
                fail(f"ENV {var} (pipelines/{st}, default {default}) should be set to an absolute path, got {v!r}")
            elif not os.path.isfile(os.path.join(root, v.lstrip("/"))):
                fail(f"ENV {var}={v} (pipelines/{st}): not a file in the image")


def main():
    repo, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    build_args = {}
    rest = sys.argv[3:]
    while rest:
        if rest[0] == "--build-arg" and len(rest) > 1:
            k, _, v = rest[1].partition("=")
            build_args[k] = v
            rest = rest[2:]
        else:
            sys.exit(f"unknown argument {rest[0]}")

    instrs = parse_dockerfile(os.path.join(repo, "Dockerfile"))
    ctx = os.path.join(work, "context")
    os.makedirs(ctx, exist_ok=True)
    pats = ignore_patterns(repo)
    nfiles = build_context(repo, ctx, pats)
    print(f"context: {nfiles} files after .dockerignore", file=sys.stderr)

    # Split into stages.
    global_args = {}
    stages = []  # dicts: name, base, instrs
    for ins, rest_, ln in instrs:
        if ins == "FROM":
            words = rest_.split()
            base = expand(words[0], {**global_args})
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append({"name": name, "base": base, "instrs": [], "line": ln})
        elif not stages:
            if ins == "ARG":
                k, _, v = rest_.partition("=")
                global_args[k] = build_args.get(k, v)
        else:
            stages[-1]["instrs"].append((ins, rest_, ln))
    if len(stages) < 2:
        fail("the Dockerfile is not multi-stage")
    roots = {}
    summary = {}
    for si, st in enumerate(stages):
        last = si == len(stages) - 1
        root = os.path.join(work, "rootfs" if last else f"stage-{st['name']}")
        os.makedirs(root, exist_ok=True)
        roots[st["name"]] = root
        args = {}  # ARGs in scope (global ones must be redeclared to be used)
        env = {}
        workdir = "/"
        user = None
        entrypoint = cmd = None
        expose = []
        for ins, rest_, ln in st["instrs"]:
            scope = {**args, **env}
            if ins == "ARG":
                k, eq, v = rest_.partition("=")
                args[k] = build_args.get(k, v if eq else global_args.get(k, ""))
            elif ins == "ENV":
                for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', rest_):
                    env[k] = expand(v.strip('"'), scope)
            elif ins == "WORKDIR":
                wd = expand(rest_, scope)
                workdir = wd if wd.startswith("/") else os.path.join(workdir, wd)
                os.makedirs(os.path.join(root, workdir.lstrip("/")), exist_ok=True)
            elif ins in ("COPY", "ADD"):
                flags, words = split_flags(rest_)
                words = [expand(w, scope) for w in words]
                srcs, dest = words[:-1], words[-1]
                if "from" in flags:
                    frm = flags["from"]
                    if frm not in roots:
                        fail(f"line {ln}: COPY --from={frm}: no earlier stage of that name (an external image cannot be checked here)")
                        continue
                    for s in srcs:
                        p = os.path.join(roots[frm], s.lstrip("/"))
                        if not os.path.exists(p):
                            fail(f"line {ln}: COPY --from={frm} {s}: the stage did not produce it")
                            continue
                        copy_into(p, dest, root, workdir)
                else:
                    for s in srcs:
                        matches = glob.glob(os.path.join(ctx, s))
                        if not matches:
                            why = "missing from the repository" if not glob.glob(os.path.join(repo, s)) else "excluded by .dockerignore"
                            fail(f"line {ln}: {ins} source {s!r} is {why}")
                            continue
                        for p in matches:
                            copy_into(p, dest, root, workdir)
            elif ins == "RUN":
                if last:
                    fail(f"line {ln}: RUN in the final stage (distroless has no shell)")
                    continue
                script = rest_
                if script.startswith("["):
                    script = " ".join(shlex.quote(w) for w in json.loads(script))
                # Map the stage's absolute paths into its directory.
                mapped = re.sub(r"(?<![\w./-])/(out|src)(?=/|\s|$)", lambda m: root + "/" + m.group(1), script)
                cwd = os.path.join(root, workdir.lstrip("/"))
                if workdir == "/src":
                    # the build stage's sources: run where COPY put them
                    cwd = os.path.join(root, "src")
                runenv = dict(os.environ, **{k: v for k, v in args.items()}, **env)
                print(f"RUN (stage {st['name']}, line {ln}): {mapped}", file=sys.stderr)
                r = subprocess.run(["sh", "-ec", mapped], cwd=cwd, env=runenv)
                if r.returncode != 0:
                    fail(f"line {ln}: RUN exited {r.returncode}: {script}")
            elif ins == "USER":
                user = expand(rest_, scope)
            elif ins == "EXPOSE":
                expose += rest_.split()
            elif ins == "ENTRYPOINT":
                entrypoint = rest_
            elif ins == "CMD":
                cmd = rest_
            elif ins == "HEALTHCHECK":
                if last and rest_.strip().upper() != "NONE":
                    fail(f"line {ln}: HEALTHCHECK in the final stage: distroless has no shell or HTTP client to run it; probe /ready from outside")
        if last:
            base = st["base"]
            if not (base.startswith("gcr.io/distroless/static") or base == "scratch"):
                fail(f"final stage FROM {base}: want distroless static or scratch")
            if user is None:
                if not base.endswith(":nonroot"):
                    fail("final stage has no USER (it would run as root)")
            elif user.split(":")[0] in ("0", "root"):
                fail(f"final stage USER {user} is root")
            for name, val in (("ENTRYPOINT", entrypoint), ("CMD", cmd)):
                if val is None or not val.startswith("["):
                    fail(f"{name} must be in exec form (JSON array): the image has no shell")
            ep = json.loads(entrypoint) if entrypoint and entrypoint.startswith("[") else []
            cm = json.loads(cmd) if cmd and cmd.startswith("[") else []
            if "4195" not in [e.split("/")[0] for e in expose]:
                fail("EXPOSE 4195 (the HTTP server: /ping, /ready, /metrics) is missing")
            # The entrypoint must be an executable in the image (on PATH).
            if ep:
                exe = ep[0]
                cands = [exe] if exe.startswith("/") else [f"{d}/{exe}" for d in ("/usr/local/bin", "/usr/bin", "/bin")]
                found = [c for c in cands if os.access(os.path.join(root, c.lstrip("/")), os.X_OK)]
                if not found:
                    fail(f"ENTRYPOINT {exe} is not an executable in the image")
                else:
                    summary["binary"] = os.path.join(root, found[0].lstrip("/"))
            # Absolute file arguments of CMD (globs too) exist in the image.
            for a in cm:
                if a.startswith("/"):
                    if not glob.glob(os.path.join(root, a.lstrip("/"))):
                        fail(f"CMD argument {a} is not in the image")
            for k, v in env.items():
                if v.startswith("/etc/"):
                    if not os.path.exists(os.path.join(root, v.lstrip("/"))):
                        fail(f"ENV {k}={v}: not in the image")
            check_streams(repo, root, cm, env)
            summary.update({"rootfs": root, "env": env, "workdir": workdir, "user": user,
                            "entrypoint": ep, "cmd": cm, "expose": expose, "base": base})
    print(json.dumps(summary))
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
