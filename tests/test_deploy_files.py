"""The deployment files say what the README and the design say (no Docker engine here to run
them, so their structure is checked instead)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_runs_web_worker_and_beat_with_the_database_scheduler():
    processes = _procfile()
    assert set(processes) == {"web", "worker", "beat"}
    assert processes["web"].startswith("gunicorn config.wsgi:application")
    assert "worker" in processes["worker"] and "-A config.celery_app" in processes["worker"]
    assert "django_celery_beat.schedulers:DatabaseScheduler" in processes["beat"]


def test_compose_runs_the_stack_on_postgres_16_and_redis_7():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert "DatabaseScheduler" in services["beat"]["command"]
    assert "deploy" not in services["beat"], "beat must never be scaled"
    assert "healthcheck" in services["web"] and "healthcheck" not in services["worker"]


def test_the_image_leaves_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git"} <= set(ignored)
    assert "HEALTHCHECK" not in (ROOT / "Dockerfile").read_text().replace("# No HEALTHCHECK", "")


# --- Kubernetes (deploy/kubernetes/) mirrors the compose file -------------------------------
K8S = ROOT / "deploy" / "kubernetes"
# compose service -> the Kubernetes workload that plays its part
K8S_COUNTERPART = {
    "web": ("Deployment", "kontor-web"),
    "worker": ("Deployment", "kontor-worker"),
    "beat": ("Deployment", "kontor-beat"),
    "migrate": ("Job", "kontor-migrate"),
    "backup": ("CronJob", "kontor-backup"),
}


def _k8s() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _pod_spec(workload: dict) -> dict:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _pod_spec_labels(workload: dict) -> dict:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]


def _container(workload: dict) -> dict:
    (container,) = _pod_spec(workload)["containers"]
    return container


def _env_names(container: dict, docs: dict) -> set[str]:
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(docs[("ConfigMap", source["configMapRef"]["name"])]["data"])
        if "secretRef" in source:
            names |= set(docs[("Secret", source["secretRef"]["name"])]["stringData"])
    return names


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_kustomization_lists_every_manifest_and_sets_one_image():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert [image["name"] for image in kustomization["images"]] == ["kontor"]
    for doc in _k8s().values():
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "kontor"


def test_beat_is_exactly_one_replica_replaced_with_recreate_and_never_autoscaled():
    docs = _k8s()
    beat = docs[("Deployment", "kontor-beat")]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "DatabaseScheduler" in " ".join(_container(beat)["command"])
    scaled = {
        doc["spec"]["scaleTargetRef"]["name"]
        for (kind, _), doc in docs.items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert scaled == {"kontor-web", "kontor-worker"}


def test_web_has_two_replicas_and_probes_on_the_health_routes():
    from core.health import ROUTES

    web = _k8s()[("Deployment", "kontor-web")]
    assert web["spec"]["replicas"] >= 2
    container = _container(web)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in ROUTES
    assert {p["containerPort"] for p in container["ports"]} == {8000}


def test_every_workload_runs_the_kontor_image_with_resources_as_non_root():
    docs = _k8s()
    assert _compose()["web"]["image"].split(":")[0] == "kontor"
    for kind, name in K8S_COUNTERPART.values():
        pod = _pod_spec(docs[(kind, name)])
        container = _container(docs[(kind, name)])
        assert container["image"].split(":")[0] == "kontor", name
        assert {"requests", "limits"} <= set(container["resources"]), name
        assert "memory" in container["resources"]["limits"], name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        # Pod Security "restricted": no privilege escalation, no capabilities, default seccomp.
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }, name


def test_web_worker_and_beat_wait_for_the_migrate_job():
    docs = _k8s()
    migrate = " ".join(_container(docs[("Job", "kontor-migrate")])["command"])
    assert "migrate --noinput" in migrate
    for name in ("kontor-web", "kontor-worker", "kontor-beat"):
        (init,) = _pod_spec(docs[("Deployment", name)])["initContainers"]
        assert "until python manage.py migrate --check" in " ".join(init["command"]), name
        assert (
            init["image"] == "kontor:latest"
            and init["envFrom"] == _container(docs[("Deployment", name)])["envFrom"]
        ), name


def test_selectors_match_their_pods_labels():
    docs = _k8s()
    pods = {
        name: _pod_spec_labels(doc)
        for (kind, name), doc in docs.items()
        if kind in ("Deployment", "Job", "CronJob")
    }
    for (kind, name), doc in docs.items():
        if kind == "Deployment":
            assert doc["spec"]["selector"]["matchLabels"].items() <= pods[name].items(), name
        if kind in ("Service", "PodDisruptionBudget"):
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [pod for pod, labels in pods.items() if selector.items() <= labels.items()]
            assert matched == ["kontor-web"], (kind, name)


def test_kubectl_kustomize_renders_the_manifests():
    """`kubectl kustomize` (what `kubectl apply -k` applies), where kubectl is installed."""
    import shutil
    import subprocess

    import pytest

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(_k8s())
    images = {
        container["image"]
        for doc in rendered
        if doc["kind"] in ("Deployment", "Job", "CronJob")
        for container in _pod_spec(doc)["containers"]
    }
    assert images == {"registry.example.com/kontor:1.0.0"}


def test_kubernetes_workloads_get_every_variable_their_compose_service_gets():
    docs, services = _k8s(), _compose()
    for service, (kind, name) in K8S_COUNTERPART.items():
        compose_env = set(services[service]["environment"])
        missing = compose_env - _env_names(_container(docs[(kind, name)]), docs)
        assert not missing, f"{name} lacks {sorted(missing)} that compose's {service} sets"


def test_kubernetes_commands_match_compose():
    docs, services = _k8s(), _compose()
    for service in ("worker", "beat", "migrate"):
        kind, name = K8S_COUNTERPART[service]
        k8s_command = " ".join(_container(docs[(kind, name)])["command"])
        compose_command = services[service]["command"]
        if service == "worker":  # compose takes the concurrency from the shell
            compose_command = compose_command.replace("${CELERY_CONCURRENCY:-2}", "2")
        assert k8s_command == compose_command
    web = " ".join(_container(docs[("Deployment", "kontor-web")])["command"])
    assert "exec gunicorn config.wsgi:application --config config/gunicorn.py" in web


def test_the_secret_is_a_template_and_the_ingress_terminates_tls():
    docs = _k8s()
    secret = docs[("Secret", "kontor-secrets")]["stringData"]
    assert set(secret.values()) == {"REPLACE_ME"}
    assert {"SECRET_KEY", "CREDENTIAL_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL"} <= set(secret)
    ingress = docs[("Ingress", "kontor")]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == (
        "20m"
    )


def test_the_backup_cronjob_backs_up_uploads_and_verifies_one_at_a_time():
    job = _k8s()[("CronJob", "kontor-backup")]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    command = " ".join(_container(job)["command"])
    assert "backup_database --upload" in command and "restore_database --verify" in command


# --- nginx in front of web (docker-compose.yml, deploy/nginx/kontor.conf) -------------------
NGINX_CONF = ROOT / "deploy" / "nginx" / "kontor.conf"


def test_compose_puts_nginx_with_tls_in_front_and_web_is_not_published():
    services = _compose()
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:1.27")
    assert set(nginx["ports"]) == {"80:80", "443:443"}
    assert "./deploy/nginx/certs:/etc/nginx/certs:ro" in nginx["volumes"]
    assert "./deploy/nginx/kontor.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert nginx["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert "ports" not in services["web"]
    assert services["web"]["environment"]["NUM_PROXIES"] == "1"


def test_nginx_redirects_to_https_proxies_to_web_and_allows_statement_sized_uploads():
    from django.conf import settings

    conf = NGINX_CONF.read_text()
    assert "return 301 https://$host$request_uri;" in conf
    assert "set $kontor_web http://web:8000;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    limit = int(conf.split("client_max_body_size ")[1].split("m;")[0]) * 1024 * 1024
    assert limit == settings.BANKING_MAX_STATEMENT_BYTES
    for header in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options"):
        assert f"add_header {header} " in conf
    assert "ssl_certificate /etc/nginx/certs/fullchain.pem;" in conf
    ciphers = conf.split("ssl_ciphers ")[1].split(";")[0].split(":")
    assert all(c.startswith(("ECDHE-", "DHE-")) and ("GCM" in c or "CHACHA" in c) for c in ciphers)


def _self_signed(directory: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_nginx_accepts_the_configuration(tmp_path):
    """`nginx -t` on the real file, where nginx is installed (apt-get install nginx); the
    paths the container mounts point into tmp_path."""
    import re
    import shutil
    import subprocess

    import pytest

    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    _self_signed(tmp_path)
    conf = NGINX_CONF.read_text()
    conf = conf.replace("/etc/nginx/certs", str(tmp_path)).replace("/var/www/acme", str(tmp_path))
    conf = conf.replace("/var/cache/nginx", str(tmp_path))
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
    if found and tuple(map(int, found.groups())) < (1, 25, 1):
        # `http2 on;` is nginx 1.25.1+ (the image is 1.27); older Debian builds only know the
        # listen parameter, which says the same.
        conf = conf.replace("    http2 on;\n", "").replace(
            "443 ssl default", "443 ssl http2 default"
        )
    (tmp_path / "kontor.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/kontor.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
         "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
