#!/usr/bin/env python3
"""Checks deploy/ against the server it ships with (run by ctest).

- promtool accepts the Prometheus config and its alert rules;
- every replayrail_* metric the alerts and the Grafana dashboard query is one the server
  exports (a live server's /metrics), so a renamed metric cannot leave a dead panel;
- the Grafana provisioning and compose.yaml name files that exist;
- the Dockerfile's runtime packages hold every shared library the binary links directly.

Usage: deploy_check.py REPLAYRAIL_BINARY SOURCE_DIR
"""
import json
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

METRIC = re.compile(r"\breplayrail_[a-z_]+\b")
# Always present: glibc and the C++ runtime are in every Debian image. (Run on a Release build,
# as the image's: a sanitizer build links more.)
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exported_metrics(binary):
    """The metric families of a live server. Its store is a Redis nobody listens on, so that a
    publish fails and the store-error family has a series too."""
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--store", "redis", "--redis", "redis://127.0.0.1:1/0",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        publish = urllib.request.Request(base + "/events/orders", data=b'{"type":"t"}',
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(publish, timeout=5)
        except urllib.error.HTTPError as e:
            check(e.code == 503, f"a publish with the store down answered {e.code}, not 503")
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    finally:
        server.terminate()
        server.wait(timeout=20)
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name] = kind
    return families


def known(name, families):
    if name in families:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and families.get(name[: -len(suffix)]) == "histogram":
            return True
    return False


def package_of(path):
    # With /usr merged, dpkg knows a library by the path its package ships, /lib or /usr/lib.
    resolved = str(pathlib.Path(path).resolve())
    for candidate in (path, resolved, resolved.removeprefix("/usr"), "/usr" + resolved):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":")[0]
    return None


def linked_packages(binary):
    """The Debian packages of the libraries the binary names as NEEDED."""
    dynamic = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True,
                             check=True).stdout
    needed = re.findall(r"^\s*NEEDED\s+(\S+)$", dynamic, re.M)
    resolved = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            resolved[parts[0]] = parts[2]
    packages = {}
    for soname in needed:
        path = resolved.get(soname)
        check(path is not None, f"ldd does not resolve {soname}")
        if path:
            packages[soname] = package_of(path)
    return packages


def main():
    binary, source = sys.argv[1], pathlib.Path(sys.argv[2])
    deploy = source / "deploy"

    # Prometheus: the config and the rules it loads.
    promtool = subprocess.run(["promtool", "check", "config",
                               str(deploy / "prometheus" / "prometheus.yml")],
                              capture_output=True, text=True)
    check(promtool.returncode == 0, "promtool check config: " + promtool.stdout + promtool.stderr)

    # The metrics the alerts and the dashboard query.
    queried = {}
    rules = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in METRIC.findall(rule["expr"]):
                queried.setdefault(name, f"alert {rule['alert']}")
    dashboard = json.loads((deploy / "grafana" / "dashboards" / "replayrail.json").read_text())
    check(dashboard["panels"], "the dashboard has no panels")
    for panel in dashboard["panels"]:
        check(panel.get("targets"), f"panel {panel['title']!r} queries nothing")
        for target in panel.get("targets", []):
            for name in METRIC.findall(target["expr"]):
                queried.setdefault(name, f"panel {panel['title']!r}")
    families = exported_metrics(binary)
    check(len(queried) >= 10, f"only {len(queried)} metrics queried")
    for name, where in sorted(queried.items()):
        check(known(name, families), f"{where} queries {name}, which the server does not export")

    # Files the provisioning and compose.yaml point at.
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    for service in compose["services"].values():
        build = service.get("build")
        if build:
            check((deploy / build["context"] / build["dockerfile"]).is_file(),
                  f"compose builds from a missing {build['dockerfile']}")
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                check((deploy / host).exists(), f"compose mounts a missing {host}")
    prometheus_config = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus_config["scrape_configs"][0]["static_configs"][0]["targets"]
    check("replayrail:8000" in targets, "Prometheus does not scrape the compose service")

    # The runtime image's packages cover the binary's libraries.
    dockerfile = (deploy / "Dockerfile").read_text()
    runtime = dockerfile.split("FROM debian:12-slim", 1)[1]
    installed = set(re.findall(r"\b(lib[a-z0-9.+-]+)", runtime))
    for soname, package in sorted(linked_packages(binary).items()):
        check(package is not None, f"no Debian package holds {soname}")
        if package and package not in BASE_PACKAGES:
            check(package in installed,
                  f"the binary links {soname} from {package}, which deploy/Dockerfile does not "
                  f"install")

    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print(f"deploy: ok ({len(queried)} metrics queried, all exported)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
