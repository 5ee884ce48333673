"""`stalk init` over sample Celery projects (fixtures/projects/): golden outputs, idempotence, no
secret from .env in any written file, promtool on the Prometheus files, the Grafana JSON, bash -n.

Sample projects (fixtures/projects/<name>/, files named dot.X are copied as .X so git and this repo's
.gitignore leave them alone):
  django_shop   Django layout: shop/settings.py (namespace='CELERY') + shop/celery.py, Redis
  mailer        plain mailer/celery.py, Redis in Celery(broker=...), -E in run_worker.sh
  billing       RabbitMQ, celeryconfig.py with worker_send_task_events = False
  api_service   pyproject.toml, an existing .gitignore and a .env holding fake secret values

Golden outputs: fixtures/projects/golden/<case>/ holds every file init writes (dot.X for .X) and
stdout.txt. After a deliberate change to the templates, regenerate them with
    STALK_UPDATE_GOLDEN=1 /usr/bin/python3 -m pytest -q test_setup_init.py
and review the diff (git diff tests/integration/fixtures/projects/golden) before committing.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import Stalk, RedisServer, free_port

PROJECTS = Path(__file__).resolve().parent / "fixtures" / "projects"
GOLDEN = PROJECTS / "golden"
UPDATE = os.environ.get("STALK_UPDATE_GOLDEN") == "1"
WRITTEN = [".env.example", ".gitignore", "start_stalk.sh", "Dockerfile.stalk", "stalk.service",
           "monitoring/prometheus.yml", "monitoring/stalk_rules.yml", "monitoring/grafana_dashboard.json",
           "MONITORING.md"]
# (case name, project, profile)
CASES = [
    ("django_shop", "django_shop", "development"),
    ("mailer", "mailer", "development"),
    ("billing", "billing", "development"),
    ("api_service", "api_service", "development"),
    ("django_shop-staging", "django_shop", "staging"),
    ("django_shop-production", "django_shop", "production"),
]


def dotted(rel):
    """The name a file is stored under in fixtures: .env -> dot.env (per path part)."""
    return "/".join("dot" + p if p.startswith(".") else p for p in rel.split("/"))


def copy_project(name, dest_root):
    src = PROJECTS / name
    dest = dest_root / name
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        target = dest / "/".join(p[3:] if p.startswith("dot.") else p for p in rel.split("/"))
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return dest


def snapshot(root):
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return out


def run_init(stalk_bin, project, *args, check=True):
    proc = subprocess.run([str(stalk_bin), "init", str(project), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def env_values(project_name):
    env = PROJECTS / project_name / "dot.env"
    if not env.exists():
        return []
    values = []
    for line in env.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m and len(m.group(2)) >= 6:
            values.append(m.group(2))
            # and any password inside a URL
            u = re.search(r"://[^:/@]*:([^@]+)@", m.group(2))
            if u:
                values.append(u.group(1))
    return values


@pytest.fixture(scope="module")
def inited(stalk_bin, tmp_path_factory):
    """Each case initialised once in its own temp dir: {case: (project dir, first run)}."""
    root = tmp_path_factory.mktemp("init")
    out = {}
    for case, project, profile in CASES:
        dest = copy_project(project, root / case)
        out[case] = (dest, run_init(stalk_bin, dest, "--profile", profile))
    return out


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_golden(inited, case):
    project, first = inited[case]
    golden = GOLDEN / case
    actual = {"stdout.txt": first.stdout}
    for rel in WRITTEN:
        actual[dotted(rel)] = (project / rel).read_text()
    if UPDATE:
        if golden.exists():
            shutil.rmtree(golden)
        for rel, text in actual.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    for rel, text in actual.items():
        expected = (golden / rel).read_text()
        assert text == expected, f"{case}/{rel} differs from the golden file (STALK_UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_second_run_changes_nothing(stalk_bin, inited, case):
    project, _ = inited[case]
    before = snapshot(project)
    profile = dict((c[0], c[2]) for c in CASES)[case]
    again = run_init(stalk_bin, project, "--profile", profile)
    assert snapshot(project) == before
    for rel in WRITTEN:
        assert re.search(rf"^  {re.escape(rel)}\s+unchanged$", again.stdout, re.M), again.stdout
    dry = run_init(stalk_bin, project, "--profile", profile, "--dry-run")
    assert "---" not in dry.stdout and "+++" not in dry.stdout, dry.stdout


def test_dry_run_writes_nothing_and_shows_diffs(stalk_bin, tmp_path):
    project = copy_project("api_service", tmp_path)
    before = snapshot(project)
    dry = run_init(stalk_bin, project, "--dry-run")
    assert snapshot(project) == before
    assert "+++ b/start_stalk.sh" in dry.stdout and "--- /dev/null" in dry.stdout
    # .gitignore exists: a diff that adds only the missing entries
    assert "--- a/.gitignore" in dry.stdout
    gitignore_diff = dry.stdout.split("--- a/.gitignore")[1].split("\n---")[0]
    assert "+.env.*" in gitignore_diff and "+!.env.example" in gitignore_diff and "+stalk.db*" in gitignore_diff
    assert "+.env\n" not in gitignore_diff  # already there


def test_existing_files_are_kept_unless_forced(stalk_bin, tmp_path):
    project = copy_project("mailer", tmp_path)
    run_init(stalk_bin, project)
    dockerfile = project / "Dockerfile.stalk"
    dockerfile.write_text("FROM scratch\n")
    kept = run_init(stalk_bin, project)
    assert dockerfile.read_text() == "FROM scratch\n"
    assert "exists and differs: kept" in kept.stdout
    dry = run_init(stalk_bin, project, "--force", "--dry-run")
    assert "-FROM scratch" in dry.stdout and dockerfile.read_text() == "FROM scratch\n"
    forced = run_init(stalk_bin, project, "--force")
    assert "overwritten (--force)" in forced.stdout
    assert dockerfile.read_text().startswith("# Dockerfile.stalk")


def test_gitignore_keeps_existing_lines_and_ignores_env(inited):
    project, _ = inited["api_service"]
    text = (project / ".gitignore").read_text()
    assert text.startswith("__pycache__/\n*.pyc\n.env\n/dist/\n")
    assert text.count("\n.env\n") == 1
    for line in (".env.*", "!.env.example", "stalk.db*"):
        assert line in text.splitlines()
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        ignored = subprocess.run(["git", "-C", str(project), "check-ignore", ".env", ".env.local", "stalk.db",
                                  "stalk.db-wal"], capture_output=True, text=True)
        assert ignored.stdout.split() == [".env", ".env.local", "stalk.db", "stalk.db-wal"]
        kept = subprocess.run(["git", "-C", str(project), "check-ignore", ".env.example"], capture_output=True)
        assert kept.returncode == 1  # not ignored


def test_no_env_value_in_any_written_file(inited):
    values = env_values("api_service")
    assert len(values) >= 4
    project, first = inited["api_service"]
    for rel in WRITTEN:
        text = (project / rel).read_text()
        for v in values:
            assert v not in text, f"a value from .env appears in {rel}"
    for v in values:
        assert v not in first.stdout and v not in first.stderr
    # ... and it warned about them, naming the keys only
    assert "warning: .env:2 holds a real-looking secret (URL password)" in first.stdout
    assert "(SECRET_KEY)" in first.stdout and "(STRIPE_API_KEY)" in first.stdout


def test_placeholders_only(inited):
    for case, _, _ in CASES:
        project, _ = inited[case]
        for line in (project / ".env.example").read_text().splitlines():
            m = re.match(r"^([A-Z_0-9]+)=(.*)$", line)
            if m and re.search(r"PASSWORD|SECRET|TOKEN|KEY$", m.group(1)) and "FILE" not in m.group(1):
                assert "_your_" in m.group(2), line
            if m and "://" in m.group(2) and "@" in m.group(2):
                assert "_your_password_here@" in m.group(2) or "_your_secret_key_here@" in m.group(2), line


def test_detection(inited):
    out = {case: inited[case][1].stdout for case, _, _ in CASES}
    assert "Celery app:    'shop' in shop/celery.py (celery -A shop)" in out["django_shop"]
    assert "Django:        yes" in out["django_shop"]
    assert "Broker:        redis (shop/settings.py:" in out["django_shop"]
    assert "CELERY_WORKER_SEND_TASK_EVENTS = True" in out["django_shop"]
    assert "CELERY_WORKER_HIJACK_ROOT_LOGGER = False" in out["django_shop"]
    assert "Task events:   on (run_worker.sh:2 (worker -E))" in out["mailer"]
    assert "Broker:        redis (mailer/celery.py:3 (Celery(broker=...)))" in out["mailer"]
    assert "Broker:        amqp (celeryconfig.py:2)" in out["billing"]
    assert "Task events:   off (celeryconfig.py:4)" in out["billing"]
    assert "event_queue_ttl = 5.0" in out["billing"] and "Add to celeryconfig.py:" in out["billing"]
    assert "Celery app:    (unnamed) in api/celery_app.py" in out["api_service"]
    assert "Broker:        redis (.env:2 (CELERY_BROKER_URL))" in out["api_service"]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_promtool(inited, case):
    project, _ = inited[case]
    mon = project / "monitoring"
    # promtool wants credentials_file to exist: check a copy that points at a stand-in token file.
    config = mon / "prometheus.yml"
    text = config.read_text()
    if "credentials_file: /etc/prometheus/stalk_token" in text:
        token = mon.parent.parent / f"{case}-stalk_token"
        token.write_text("stand-in\n")
        config = mon / "prometheus.check.yml"
        config.write_text(text.replace("/etc/prometheus/stalk_token", str(token)))
    for cmd in (["promtool", "check", "config", str(config)],
                ["promtool", "check", "rules", str(mon / "stalk_rules.yml")]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_start_script(inited, case):
    project, _ = inited[case]
    script = project / "start_stalk.sh"
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_start_script_reads_env(stalk_bin, tmp_path):
    project = copy_project("mailer", tmp_path)
    run_init(stalk_bin, project)
    fake = tmp_path / "fake_stalk"
    fake.write_text('#!/bin/sh\necho "args=$* broker=$CELERY_BROKER_URL port=$STALK_PORT"\n')
    fake.chmod(0o755)
    no_env = subprocess.run([str(project / "start_stalk.sh")], capture_output=True, text=True,
                            env={**os.environ, "STALK_BIN": str(fake)})
    assert no_env.returncode == 1 and "no .env" in no_env.stderr
    (project / ".env").write_text("CELERY_BROKER_URL=redis://127.0.0.1:6399/5\nSTALK_PORT=5999\n")
    ran = subprocess.run([str(project / "start_stalk.sh"), "--logging", "debug"], capture_output=True, text=True,
                         env={**os.environ, "STALK_BIN": str(fake)})
    assert ran.stdout.strip() == "args=serve --logging debug broker=redis://127.0.0.1:6399/5 port=5999"


@pytest.fixture(scope="module")
def exported_metric_names(stalk_bin, tmp_path_factory):
    """Sample names Stalk's /metrics can carry, from a live `stalk serve` scrape (TYPE lines)."""
    root = tmp_path_factory.mktemp("metrics")
    redis = RedisServer(free_port(), root / "redis").start()
    stalk = Stalk(stalk_bin, redis.url, root / "stalk").start()
    try:
        stalk.wait_ready(redis)
        text = stalk.request("/metrics").text
    finally:
        stalk.stop()
        redis.stop()
    names = {"up"}  # Prometheus's own
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        family, kind = m.groups()
        base = family[:-6] if family.endswith("_total") else family
        if kind == "counter":
            names |= {base + "_total"}
        elif kind == "histogram":
            names |= {family + "_bucket", family + "_sum", family + "_count"}
        else:
            names.add(family)
    assert "flower_events_total" in names and "celery_queue_length" in names, sorted(names)
    return names


def referenced_metrics(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not metric names
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # nor are grouping labels
    return set(re.findall(r"\b((?:flower|celery|stalk)_[a-z_]+|up)\b", expr))


def test_grafana_dashboard_uses_only_exported_metrics(inited, exported_metric_names):
    for case, _, _ in CASES:
        project, _ = inited[case]
        dashboard = json.loads((project / "monitoring" / "grafana_dashboard.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 10
        for expr in exprs:
            unknown = referenced_metrics(expr) - exported_metric_names
            assert not unknown, f"{case}: {expr} uses {unknown}"


def test_alert_rules_use_only_exported_metrics(inited, exported_metric_names):
    project, _ = inited["django_shop-production"]
    text = (project / "monitoring" / "stalk_rules.yml").read_text()
    exprs = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*expr: (.*)$", line)
        if not m:
            continue
        if m.group(1) == "|":
            block = []
            for nxt in lines[i + 1:]:
                if re.match(r"^\s*(for|labels|annotations):", nxt):
                    break
                block.append(nxt)
            exprs.append(" ".join(block))
        else:
            exprs.append(m.group(1))
    assert len(exprs) >= 10
    for expr in exprs:
        unknown = referenced_metrics(expr) - exported_metric_names
        assert not unknown, f"{expr} uses {unknown}"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_start_script_shellcheck(inited):
    for case, _, _ in CASES:
        project, _ = inited[case]
        proc = subprocess.run(["shellcheck", str(project / "start_stalk.sh")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_unit_verifies(inited):
    for case, _, _ in CASES:
        project, _ = inited[case]
        proc = subprocess.run(["systemd-analyze", "verify", str(project / "stalk.service")],
                              capture_output=True, text=True, timeout=60)
        # The binary is not installed here; anything else is a real complaint about the unit.
        problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                    if line.strip() and "/usr/local/bin/stalk is not executable" not in line]
        assert not problems, problems


def test_warns_about_a_secret_in_a_file_it_touches(stalk_bin, tmp_path):
    project = copy_project("billing", tmp_path)
    (project / ".env.example").write_text("BROKER_PASSWORD=Zr8kQm2Tq9WvXe41\n")
    (project / ".gitignore").write_text("*.pyc\n")
    run = run_init(stalk_bin, project)
    assert "warning: .env.example:1 holds a real-looking secret (BROKER_PASSWORD)" in run.stdout
    assert "Zr8kQm2Tq9WvXe41" not in run.stdout + run.stderr
    assert (project / ".env.example").read_text() == "BROKER_PASSWORD=Zr8kQm2Tq9WvXe41\n"  # kept
    assert "Zr8kQm2Tq9WvXe41" not in (project / ".gitignore").read_text()
