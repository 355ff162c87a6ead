#!/usr/bin/env python3
"""Rehearses deploy/Dockerfile where no container engine runs (this project's CI machines).

Every `FROM debian:12-slim` becomes a Debian 12 (bookworm) minbase root filesystem made with
debootstrap (cached), every RUN runs in a chroot of its stage as the stage's USER with the ARG and
ENV values in its environment, COPY honours .dockerignore, and the stages a target needs are built
once and shared, as BuildKit does. Then, for each target image, it checks what the Dockerfile
promises: no compiler or build tool in the image, the entrypoint starts as the image's user with
the libraries it holds (it stops at once, asking for --database-url), and the build stage built
the same service binaries as `make build`.

It is a rehearsal, not Docker: layers, caching and the registry are not exercised, and minbase
is close to, not identical with, the debian:12-slim image. Needs root, debootstrap and Debian's
apt mirror. Usage (from the repository root):

  deploy/rehearse-dockerfile.py [--work DIR] [--target T ...] [--build-arg K=V ...] [--reuse]
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

BASES = {"debian:12-slim": "bookworm"}
MIRROR = "http://deb.debian.org/debian"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
COMPILERS = ["gcc", "g++", "cc", "c++", "cpp", "clang", "ld", "as", "cmake", "make"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def log(msg):
    print(f"[rehearse] {msg}", flush=True)


def run(cmd, **kw):
    log("+ " + (cmd if isinstance(cmd, str) else " ".join(shlex.quote(c) for c in cmd)))
    return subprocess.run(cmd, check=True, **kw)


def parse_dockerfile(path):
    """[(INSTRUCTION, arguments)] with continuations joined and comments dropped."""
    out, buf = [], ""
    for line in read(path).split("\n"):
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def substitute(text, values):
    def repl(m):
        name = m.group(1) or m.group(2)
        return values.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)


def parse_assignments(text):
    """`K=V K2="v 2"` or the legacy `K V` form of ENV/ARG."""
    words = shlex.split(text)
    if len(words) >= 1 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])} if len(words) > 1 else {words[0]: None}
    return dict(w.split("=", 1) for w in words)


class DockerIgnore:
    def __init__(self, context):
        self.rules = []
        path = os.path.join(context, ".dockerignore")
        if os.path.exists(path):
            for line in read(path).split("\n"):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
                self.rules.append((negate, pattern))

    @staticmethod
    def _match(pattern, rel):
        # Go's filepath.Match as Docker uses it: * and ? stay within a path element; ** spans.
        regex, k = "", 0
        while k < len(pattern):
            if pattern.startswith("**/", k):
                regex, k = regex + "(?:.*/)?", k + 3
            elif pattern.startswith("**", k):
                regex, k = regex + ".*", k + 2
            elif pattern[k] == "*":
                regex, k = regex + "[^/]*", k + 1
            elif pattern[k] == "?":
                regex, k = regex + "[^/]", k + 1
            else:
                regex, k = regex + re.escape(pattern[k]), k + 1
        return re.fullmatch(regex, rel) is not None

    def excluded(self, rel):
        """Docker's rule: the last pattern matching the path, or one of its parents, wins."""
        parts = rel.split("/")
        verdict = False
        for negate, pattern in self.rules:
            if any(self._match(pattern, "/".join(parts[:d])) for d in range(1, len(parts) + 1)):
                verdict = not negate
        return verdict

    def prunable(self, rel_dir):
        """An excluded directory that no ! pattern reaches into."""
        return self.excluded(rel_dir) and not any(
            negate and pattern.startswith(rel_dir + "/") for negate, pattern in self.rules)


class Rehearsal:
    def __init__(self, args):
        self.context = os.path.abspath(args.context)
        self.work = os.path.abspath(args.work)
        self.dockerfile = os.path.join(self.context, args.file)
        self.build_args = dict(a.split("=", 1) for a in args.build_arg)
        self.ignore = DockerIgnore(self.context)
        self.stages = []  # dicts: name, base, instructions
        self.global_args = {}
        self.built = {}  # stage name -> rootfs
        self.meta = {}

    # -- parsing ------------------------------------------------------------------------------
    def load(self):
        stage = None
        for word, rest in parse_dockerfile(self.dockerfile):
            if word == "FROM":
                values = dict(self.global_args)
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", substitute(rest, values), re.I)
                stage = {"base": m.group(1), "name": m.group(2) or str(len(self.stages)),
                         "instructions": []}
                self.stages.append(stage)
            elif stage is None:
                if word != "ARG":
                    raise SystemExit(f"{word} before the first FROM")
                for k, v in parse_assignments(rest).items():
                    self.global_args[k] = self.build_args.get(k, v or "")
            else:
                stage["instructions"].append((word, rest))

    def stage(self, name):
        for s in self.stages:
            if s["name"] == name:
                return s
        return None

    def needed(self, targets):
        need, todo = set(), list(targets)
        while todo:
            name = todo.pop()
            if name in need:
                continue
            s = self.stage(name)
            if s is None:
                raise SystemExit(f"no stage {name}")
            need.add(name)
            if self.stage(s["base"]):
                todo.append(s["base"])
            for word, rest in s["instructions"]:
                m = re.search(r"--from=(\S+)", rest) if word == "COPY" else None
                if m:
                    todo.append(m.group(1))
        return [s["name"] for s in self.stages if s["name"] in need]

    # -- root filesystems ---------------------------------------------------------------------
    def base_rootfs(self, image):
        suite = BASES.get(image.split("@")[0])
        if suite is None:
            raise SystemExit(f"cannot rehearse FROM {image}: only {', '.join(BASES)}")
        cached = os.path.join(self.work, f"base-{suite}")
        if not os.path.exists(os.path.join(cached, ".complete")):
            shutil.rmtree(cached, ignore_errors=True)
            run(["debootstrap", "--variant=minbase", suite, cached, MIRROR])
            with open(os.path.join(cached, ".complete"), "w", encoding="utf-8"):
                pass
        return cached

    def chroot_run(self, rootfs, command, env, user, workdir):
        shutil.copy("/etc/resolv.conf", os.path.join(rootfs, "etc/resolv.conf"))
        mounts = []
        try:
            for src, dst in (("/proc", "proc"), ("/dev", "dev")):
                target = os.path.join(rootfs, dst)
                os.makedirs(target, exist_ok=True)
                run(["mount", "--bind", src, target])
                mounts.append(target)
            cmd = [CHROOT]
            if user:
                cmd.append(f"--userspec={user}")
            cmd += [rootfs, "/bin/sh", "-c", f"cd {shlex.quote(workdir)} && {command}"]
            return run(cmd, env=env)
        finally:
            for target in reversed(mounts):
                subprocess.run(["umount", "-l", target], check=False)

    def context_files(self):
        """The files `COPY . .` sends, relative to the context."""
        for top, dirs, files in os.walk(self.context):
            rel_top = os.path.relpath(top, self.context)
            rel_top = "" if rel_top == "." else rel_top
            dirs[:] = [d for d in dirs if not self.ignore.prunable(os.path.join(rel_top, d))]
            for f in files:
                rel = os.path.join(rel_top, f)
                if not self.ignore.excluded(rel):
                    yield rel

    def copy_context(self, rootfs, dest):
        for rel in self.context_files():
            target = os.path.join(rootfs, dest.lstrip("/"), rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(self.context, rel), target, follow_symlinks=False)

    def build_stage(self, s, reuse=False):
        rootfs = os.path.join(self.work, "stage-" + s["name"])
        done = os.path.join(self.work, f"stage-{s['name']}.json")
        if reuse and os.path.exists(done):
            log(f"stage {s['name']}: reusing {rootfs}")
            self.built[s["name"]] = rootfs
            self.meta[s["name"]] = json.loads(read(done))
            return rootfs
        if os.path.exists(done):
            os.remove(done)
        shutil.rmtree(rootfs, ignore_errors=True)
        parent = s["base"]
        if parent in self.built:
            run(["cp", "-a", self.built[parent], rootfs])
            meta = json.loads(json.dumps(self.meta[parent]))
        else:
            run(["cp", "-a", self.base_rootfs(parent), rootfs])
            meta = {"env": {}, "user": "", "workdir": "/", "entrypoint": None, "expose": []}
        args = {}
        for word, rest in s["instructions"]:
            values = {**self.global_args, **args, **meta["env"]}
            if word == "ARG":
                for k, v in parse_assignments(rest).items():
                    args[k] = self.build_args.get(k, v if v is not None else self.global_args.get(k, ""))
            elif word == "ENV":
                for k, v in parse_assignments(substitute(rest, values)).items():
                    meta["env"][k] = v
            elif word == "WORKDIR":
                meta["workdir"] = os.path.join(meta["workdir"], substitute(rest, values))
                os.makedirs(os.path.join(rootfs, meta["workdir"].lstrip("/")), exist_ok=True)
            elif word == "USER":
                meta["user"] = substitute(rest, values)
            elif word == "RUN":
                env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "HOME": "/root", **{k: str(v) for k, v in values.items()}}
                self.chroot_run(rootfs, rest, env, meta["user"], meta["workdir"])
            elif word == "COPY":
                words = shlex.split(substitute(rest, values))
                source_stage = None
                for w in [w for w in words if w.startswith("--")]:
                    if w.startswith("--from="):
                        source_stage = w.split("=", 1)[1]
                    words.remove(w)
                *sources, dest = words
                dest = os.path.join(meta["workdir"], dest)
                for src in sources:
                    if source_stage is not None:
                        origin = os.path.join(self.built[source_stage], src.lstrip("/"))
                    elif src == ".":
                        self.copy_context(rootfs, dest)
                        continue
                    else:
                        if self.ignore.excluded(os.path.normpath(src)):
                            raise SystemExit(f"COPY {src}: excluded by .dockerignore")
                        origin = os.path.join(self.context, src)
                    target = os.path.join(rootfs, dest.lstrip("/"))
                    if dest.endswith("/"):
                        target = os.path.join(target, os.path.basename(src))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(origin, target)
            elif word == "ENTRYPOINT":
                meta["entrypoint"] = json.loads(rest)
            elif word == "EXPOSE":
                meta["expose"] += rest.split()
            elif word in ("LABEL", "CMD"):
                pass
            else:
                raise SystemExit(f"cannot rehearse {word}")
        self.built[s["name"]] = rootfs
        self.meta[s["name"]] = meta
        with open(done, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        return rootfs

    # -- checks -------------------------------------------------------------------------------
    def check_image(self, target, host_build):
        rootfs, meta = self.built[target], self.meta[target]
        problems = []
        for tool in COMPILERS:
            for d in ("usr/bin", "usr/local/bin", "bin"):
                if os.path.exists(os.path.join(rootfs, d, tool)):
                    problems.append(f"{target}: the image holds /{d}/{tool}")
        if meta["user"] in ("", "0", "root", "0:0"):
            problems.append(f"{target}: runs as root")
        entry = meta["entrypoint"]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **meta["env"]}
        result = subprocess.run([CHROOT, f"--userspec={meta['user']}", rootfs] + entry,
                                env=env, capture_output=True, text=True, timeout=30)
        if "--database-url (MCI_DATABASE_URL) is required" not in result.stderr + result.stdout:
            problems.append(f"{target}: {entry[0]} did not start as {meta['user']}: "
                            f"exit {result.returncode}: {(result.stderr or result.stdout)[-400:]}")
        else:
            log(f"{target}: {entry[0]} starts as {meta['user']} and asks for its database")
        binary = entry[0]
        build_rootfs = [self.built[n] for n in self.built if os.path.isdir(
            os.path.join(self.built[n], "src/build/services"))]
        if host_build and build_rootfs:
            def services(root):
                found = set()
                for top, _, files in os.walk(os.path.join(root, "services")):
                    for f in files:
                        p = os.path.join(top, f)
                        if os.access(p, os.X_OK):
                            with open(p, "rb") as f:
                                if f.read(4) == b"\x7fELF":
                                    found.add(os.path.relpath(p, root))
                return found
            ours = services(os.path.join(build_rootfs[0], "src/build"))
            theirs = services(host_build)
            if ours != theirs:
                problems.append(f"service binaries differ from make build's: {sorted(ours ^ theirs)}")
            name = os.path.basename(binary)
            if not any(p.endswith("/" + name) for p in ours):
                problems.append(f"{target}: {name} is not a binary of the build stage")
        return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", default=".")
    parser.add_argument("--file", default="deploy/Dockerfile")
    parser.add_argument("--work", default="/var/tmp/mci-dockerfile-rehearsal")
    parser.add_argument("--target", action="append",
                        default=[], help="default: catalog, marketplace, template-reference")
    parser.add_argument("--build-arg", action="append", default=[])
    parser.add_argument("--reuse", action="store_true",
                        help="keep the stages a previous run built (to rerun the checks)")
    parser.add_argument("--host-build", default="build",
                        help="`make build`'s tree, to compare the service binaries with")
    parser.add_argument("--list-context", action="store_true",
                        help="print the files COPY . . would send, and stop")
    args = parser.parse_args()
    if args.list_context:
        for rel in sorted(Rehearsal(args).context_files()):
            print(rel)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("needs root (debootstrap, chroot, mount)")
    targets = args.target or ["catalog", "marketplace", "template-reference"]
    r = Rehearsal(args)
    r.load()
    os.makedirs(r.work, exist_ok=True)
    for name in r.needed(targets):
        log(f"stage {name}")
        r.build_stage(r.stage(name), reuse=args.reuse)
    host_build = os.path.abspath(args.host_build) if os.path.isdir(args.host_build) else None
    problems = [p for t in targets for p in r.check_image(t, host_build)]
    for p in problems:
        log("PROBLEM: " + p)
    log("all images as the Dockerfile promises" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
