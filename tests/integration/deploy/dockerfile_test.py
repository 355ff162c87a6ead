#!/usr/bin/env python3
"""Static checks of deploy/Dockerfile and its build context, run by CTest.

- The context `COPY . .` sends (deploy/rehearse-dockerfile.py's reading of .dockerignore) holds
  what CMake needs and none of the local build trees, VCS data or chart.
- The build stage runs the CMake commands of `make build` (Release), with -j$(nproc).
- The runtime stage installs no compiler or build tool, and each service image runs as a
  numeric non-root user, copies its binary from the path CMake builds it at, and checks it with
  ldd.
"""
import importlib.util
import os
import re
import sys
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.getcwd()
spec = importlib.util.spec_from_file_location(
    "rehearse", os.path.join(ROOT, "deploy", "rehearse-dockerfile.py"))
rehearse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rehearse)

SERVICES = {
    "catalog": "services/catalog/catalog-service",
    "marketplace": "services/marketplace/marketplace-service",
    "template-reference": "services/templates/template-reference-service",
}
BUILD_TOOLS = {"gcc", "g++", "cpp", "clang", "cmake", "make", "binutils", "build-essential",
               "pkg-config", "protobuf-compiler", "protobuf-compiler-grpc"}


class Args:
    context = ROOT
    file = "deploy/Dockerfile"
    work = "/nonexistent"
    build_arg = []


def stages():
    r = rehearse.Rehearsal(Args())
    r.load()
    return r


def runs(stage):
    return " ".join(rest for word, rest in stage["instructions"] if word == "RUN")


class ContextTest(unittest.TestCase):
    def setUp(self):
        self.files = set(rehearse.Rehearsal(Args()).context_files())

    def test_holds_what_cmake_needs(self):
        for needed in ["CMakeLists.txt", "proto/mci/catalog/v1/catalog.proto",
                       "libs/common/CMakeLists.txt", "services/catalog/CMakeLists.txt",
                       "services/catalog/migrations/0001_init.sql", "tests/CMakeLists.txt",
                       "tools/mcictl/CMakeLists.txt", "deploy/inventory.json"]:
            if os.path.exists(os.path.join(ROOT, needed)):
                self.assertIn(needed, self.files)

    def test_leaves_out_build_trees_vcs_and_chart(self):
        for f in self.files:
            first = f.split("/")[0]
            self.assertFalse(first.startswith("build") or first in (".git", ".local", "helm",
                                                                     "node_modules", "Testing"),
                             f)
            self.assertNotIn("CMakeCache.txt", f)
        self.assertNotIn("deploy/Dockerfile", self.files)

    def test_ignore_rules_follow_docker(self):
        ignore = rehearse.DockerIgnore(ROOT)
        self.assertTrue(ignore.excluded("build-release/services/catalog/catalog-service"))
        self.assertTrue(ignore.excluded("x/y/CMakeCache.txt"))
        self.assertFalse(ignore.excluded("deploy/inventory.json"))  # the ! rule wins
        self.assertTrue(ignore.excluded("deploy/local/run.sh"))
        self.assertFalse(ignore.excluded("services/catalog/README.md"))  # *.md is the top only


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.r = stages()

    def test_build_stage_runs_make_builds_cmake_commands(self):
        build = self.r.stage("build")
        self.assertIsNotNone(build)
        commands = runs(build)
        self.assertIn("cmake -S . -B build -DCMAKE_BUILD_TYPE=${BUILD_TYPE}", commands)
        self.assertIn('cmake --build build -j"$(nproc)"', commands)
        args = dict(rest.split("=", 1) for word, rest in build["instructions"]
                    if word == "ARG" and "=" in rest)
        self.assertEqual(args.get("BUILD_TYPE"), "Release")
        makefile = rehearse.read(os.path.join(ROOT, "Makefile"))
        self.assertIn("cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)", makefile)
        self.assertIn("cmake --build $(BUILD_DIR) -j $(JOBS)", makefile)

    def test_runtime_stage_has_no_build_tools(self):
        runtime = self.r.stage("runtime")
        installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", runs(runtime).split("install", 1)[1]
                                   .split("&&", 1)[0]))
        self.assertFalse(installed & BUILD_TOOLS, installed & BUILD_TOOLS)
        self.assertNotIn("-dev", " ".join(installed))
        self.assertNotEqual(self.r.stage("runtime")["base"], "build")

    def test_service_images(self):
        for target, binary in SERVICES.items():
            stage = self.r.stage(target)
            self.assertIsNotNone(stage, target)
            self.assertEqual(stage["base"], "runtime")
            user = [rest for word, rest in self.r.stage("runtime")["instructions"]
                    if word == "USER"][-1]
            self.assertRegex(user, r"^[1-9][0-9]*:[1-9][0-9]*$")
            copies = [rest for word, rest in stage["instructions"] if word == "COPY"]
            name = os.path.basename(binary)
            self.assertIn(f"--from=build /src/build/{binary} /usr/local/bin/{name}", copies)
            self.assertIn(f"ldd /usr/local/bin/{name}", runs(stage))
            entry = [rest for word, rest in stage["instructions"] if word == "ENTRYPOINT"]
            self.assertEqual(entry, [f'["/usr/local/bin/{name}"]'])
            self.assertTrue(os.path.exists(os.path.join(ROOT, os.path.dirname(binary),
                                                        "CMakeLists.txt")), binary)


if __name__ == "__main__":
    unittest.main(verbosity=2)
