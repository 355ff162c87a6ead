#!/usr/bin/env python3
"""Assertions on the manifests rendered from helm/mci by chart-check (run by chart_test.sh).

usage: chart_test.py CHART_CHECK CHART_DIR
"""

import base64
import os
import subprocess
import sys

import yaml

CHART_CHECK, CHART = sys.argv[1], sys.argv[2]
RELEASE = "rel"
NAMESPACE = "mci"
PRODUCTION = os.path.join(CHART, "values-production.yaml")

# component -> (grpc.health.v1 service name, gRPC port, HTTP port)
COMPONENTS = {
    "catalog": ("mci.catalog.v1.CatalogService", 50051, 9091),
    "marketplace": ("mci.marketplace.v1.MarketplaceService", 50052, 9092),
    "template-reference": ("mci.templates.v1.ServerTemplateService", 50053, 9093),
}
VALUES_KEYS = {"catalog": "catalog", "marketplace": "marketplace",
               "template-reference": "templateReference"}
RECOMMENDED_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/instance",
                      "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                      "helm.sh/chart"]

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
    return ok


def run_chart_check(*args):
    cmd = [CHART_CHECK, CHART, "--release-name", RELEASE, "--namespace", NAMESPACE, "-q",
           "-o", "-", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def render(scenario, *args):
    """Renders with --strict; the run itself is a check. Returns (documents, raw text)."""
    result = run_chart_check("--strict", *args)
    check(f"{scenario}: chart-check --strict passes (no errors, no warnings)",
          result.returncode == 0, result.stderr.strip())
    # The manifests are asserted on even when validation failed, to name every problem.
    try:
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    except yaml.YAMLError as e:
        check(f"{scenario}: rendered manifests parse as YAML", False, str(e))
        docs = []
    return docs, result.stdout


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def name_of(component):
    return f"{RELEASE}-mci-{component}"


def component_of(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


# --- checks shared by every rendering ----------------------------------------------------------

def check_common(scenario, docs, secret_name):
    deployments = {component_of(d): d for d in of_kind(docs, "Deployment")}
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    config_maps = {component_of(d): d for d in of_kind(docs, "ConfigMap")}
    accounts = {d["metadata"]["name"]: d for d in of_kind(docs, "ServiceAccount")}
    pdbs = {component_of(d): d for d in of_kind(docs, "PodDisruptionBudget")}

    check(f"{scenario}: a Deployment per service", set(deployments) == set(COMPONENTS),
          f"got {sorted(map(str, deployments))}")
    check(f"{scenario}: a Service per service",
          set(services) == {name_of(c) for c in COMPONENTS}, f"got {sorted(services)}")
    check(f"{scenario}: a ServiceAccount per service, no API token",
          set(accounts) == {name_of(c) for c in COMPONENTS}
          and all(a.get("automountServiceAccountToken") is False for a in accounts.values()),
          f"got {sorted(accounts)}")
    check(f"{scenario}: a ConfigMap per service", set(config_maps) == set(COMPONENTS))
    check(f"{scenario}: a PodDisruptionBudget per service", set(pdbs) == set(COMPONENTS))

    missing = [f"{d['kind']}/{d['metadata']['name']}: {label}" for d in docs
               for label in RECOMMENDED_LABELS + ["app.kubernetes.io/component"]
               if label not in d["metadata"].get("labels", {})
               and not (label == "app.kubernetes.io/component" and d["kind"] == "Secret")]
    check(f"{scenario}: every resource has the recommended app.kubernetes.io/* labels",
          not missing, "; ".join(missing[:5]))

    for component, (health, grpc_port, http_port) in COMPONENTS.items():
        deployment = deployments.get(component)
        if deployment is None:
            continue
        where = f"{scenario}: {component}"
        template = deployment["spec"]["template"]
        pod = template["spec"]
        pod_sc = pod.get("securityContext", {})
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = template["metadata"]["labels"]

        check(f"{where}: selector matches the pod labels (name, instance, component)",
              all(pod_labels.get(k) == v for k, v in selector.items())
              and {"app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/component"} <= set(selector))
        check(f"{where}: pod does not mount a service-account token",
              pod.get("automountServiceAccountToken") is False)
        check(f"{where}: pod uses its own ServiceAccount",
              pod.get("serviceAccountName") == name_of(component))
        volumes = {v["name"]: v for v in pod.get("volumes", [])}

        containers = pod.get("containers", []) + pod.get("initContainers", [])
        for c in containers:
            cw = f"{where}/{c['name']}"
            sc = c.get("securityContext", {})
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            check(f"{cw}: gRPC port {grpc_port} and HTTP port {http_port}",
                  ports.get("grpc") == grpc_port and ports.get("http-metrics") == http_port,
                  str(ports))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                grpc = c.get(probe, {}).get("grpc")
                check(f"{cw}: native grpc {probe} on the gRPC port",
                      grpc is not None and grpc.get("port") == grpc_port, str(c.get(probe)))
            check(f"{cw}: readiness asks grpc.health.v1 for {health}",
                  c.get("readinessProbe", {}).get("grpc", {}).get("service") == health)
            resources = c.get("resources", {})
            check(f"{cw}: resources requests (cpu, memory) and limits (memory)",
                  {"cpu", "memory"} <= set(resources.get("requests", {}))
                  and "memory" in resources.get("limits", {}), str(resources))
            check(f"{cw}: runAsNonRoot",
                  sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True)
            check(f"{cw}: non-root uid",
                  (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) != 0)
            check(f"{cw}: readOnlyRootFilesystem", sc.get("readOnlyRootFilesystem") is True)
            check(f"{cw}: allowPrivilegeEscalation false",
                  sc.get("allowPrivilegeEscalation") is False)
            check(f"{cw}: not privileged", sc.get("privileged") is not True)
            check(f"{cw}: capabilities drop ALL, add none",
                  "ALL" in sc.get("capabilities", {}).get("drop", [])
                  and not sc.get("capabilities", {}).get("add"))
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            check(f"{cw}: seccompProfile RuntimeDefault", seccomp.get("type") == "RuntimeDefault")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            check(f"{cw}: writable /tmp is an emptyDir",
                  len(tmp) == 1 and "emptyDir" in volumes.get(tmp[0]["name"], {}))
            image = c.get("image", "")
            check(f"{cw}: image pinned by tag or digest, not latest",
                  ("@sha256:" in image or ":" in image.rsplit("/", 1)[-1])
                  and not image.endswith(":latest"), image)

            env = env_map(c)
            for var, key in (("MCI_DATABASE_URL", None), ("MCI_JWT_SECRET", None)):
                ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
                check(f"{cw}: {var} comes from Secret {secret_name}",
                      ref.get("name") == secret_name and "value" not in env.get(var, {}),
                      str(env.get(var)))
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]
            refs += [s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s]
            check(f"{cw}: every secret reference points at {secret_name}",
                  refs and all(r == secret_name for r in refs), str(refs))
            cm_refs = [s["configMapRef"]["name"] for s in c.get("envFrom", [])
                       if "configMapRef" in s]
            check(f"{cw}: settings from its ConfigMap", cm_refs == [name_of(component)])

        # The ConfigMap binds all interfaces and points at the peers' rendered Services.
        data = config_maps.get(component, {}).get("data", {})
        check(f"{where}: binds gRPC on 0.0.0.0:{grpc_port} and HTTP on 0.0.0.0:{http_port}",
              data.get("MCI_GRPC_ADDRESS") == f"0.0.0.0:{grpc_port}"
              and data.get("MCI_HTTP_ADDRESS") == f"0.0.0.0:{http_port}", str(data))
        check(f"{where}: no secret in the ConfigMap",
              not any(k in data for k in ("MCI_DATABASE_URL", "MCI_JWT_SECRET")))
        peer = "template-reference" if component == "catalog" else "catalog"
        peer_var = "MCI_TEMPLATES_ADDRESS" if component == "catalog" else "MCI_CATALOG_ADDRESS"
        address = data.get(peer_var, "")
        host, _, port = address.rpartition(":")
        peer_service = services.get(host.split(".")[0], {})
        check(f"{where}: {peer_var} is the {peer} Service ({address})",
              host == f"{name_of(peer)}.{NAMESPACE}.svc"
              and int(port or 0) in [p["port"] for p in peer_service.get("spec", {})
                                     .get("ports", []) if p["name"] == "grpc"])
        if component == "catalog":
            check(f"{where}: inventory seed file configured",
                  data.get("MCI_INVENTORY_FILE", "").startswith("/etc/mci/"))

        service = services.get(name_of(component), {})
        spec = service.get("spec", {})
        check(f"{where}: Service selects the pods and exposes grpc/http-metrics",
              spec.get("selector") == selector
              and {(p["name"], p["port"], p["targetPort"]) for p in spec.get("ports", [])}
              == {("grpc", grpc_port, "grpc"), ("http-metrics", http_port, "http-metrics")})
        pdb = pdbs.get(component, {}).get("spec", {})
        check(f"{where}: PodDisruptionBudget selects the pods",
              pdb.get("selector", {}).get("matchLabels") == selector)


def check_replicas(scenario, docs, expected):
    for d in of_kind(docs, "Deployment"):
        check(f"{scenario}: {component_of(d)} runs {expected} replicas",
              d["spec"].get("replicas") == expected, str(d["spec"].get("replicas")))


# --- scenarios ---------------------------------------------------------------------------------

def default_values():
    scenario = "default values"
    docs, _ = render(scenario)
    if not docs:
        return
    check_common(scenario, docs, f"{RELEASE}-mci")
    secrets = of_kind(docs, "Secret")
    check(f"{scenario}: the chart creates one Secret", len(secrets) == 1)
    if secrets:
        data = secrets[0].get("data", {})
        check(f"{scenario}: the Secret holds the JWT secret and three database URLs",
              set(data) == {"jwt-secret", "catalog-database-url", "marketplace-database-url",
                            "template-reference-database-url"}, str(sorted(data)))
        check(f"{scenario}: a generated JWT secret of 48 characters",
              len(base64.b64decode(data.get("jwt-secret", ""))) == 48)
        urls = [base64.b64decode(v).decode() for k, v in data.items() if k.endswith("-url")]
        check(f"{scenario}: database URLs are PostgreSQL URLs",
              urls and all(u.startswith("postgresql://") for u in urls), str(urls))
    check(f"{scenario}: no HorizontalPodAutoscaler", not of_kind(docs, "HorizontalPodAutoscaler"))
    check(f"{scenario}: no NetworkPolicy", not of_kind(docs, "NetworkPolicy"))
    check_replicas(scenario, docs, 1)


def existing_secret():
    scenario = "existingSecret"
    canary = "jwt-canary-4b7f0c2e9d"
    docs, raw = render(scenario, "--set", "existingSecret=my-secret", "--set", f"jwtSecret={canary}",
                       "--set", "catalog.databaseUrl=postgresql://u:db-canary-pw@h/db")
    if not docs:
        return
    check_common(scenario, docs, "my-secret")
    check(f"{scenario}: no Secret rendered", not of_kind(docs, "Secret"))
    leaked = [s for s in (canary, "db-canary-pw", base64.b64encode(canary.encode()).decode())
              if s in raw]
    check(f"{scenario}: the JWT secret and database password are never inlined", not leaked,
          str(leaked))
    docs, _ = render(f"{scenario} with custom keys", "--set", "existingSecret=my-secret",
                     "--set", "secretKeys.jwtSecret=jwt",
                     "--set", "secretKeys.catalogDatabaseUrl=catalog-db")
    for d in of_kind(docs, "Deployment"):
        env = env_map(d["spec"]["template"]["spec"]["containers"][0])
        want_db = "catalog-db" if component_of(d) == "catalog" else \
            f"{component_of(d)}-database-url"
        check(f"{scenario} with custom keys: {component_of(d)} reads keys jwt and {want_db}",
              env["MCI_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "jwt"
              and env["MCI_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == want_db)


def production():
    scenario = "values-production.yaml"
    docs, _ = render(scenario, "-f", PRODUCTION)
    if not docs:
        return
    with open(PRODUCTION) as f:
        values = yaml.safe_load(f)
    check_common(scenario, docs, values["existingSecret"])
    check(f"{scenario}: no Secret rendered (existingSecret)", not of_kind(docs, "Secret"))
    deployments = {component_of(d): d for d in of_kind(docs, "Deployment")}
    hpas = {component_of(d): d for d in of_kind(docs, "HorizontalPodAutoscaler")}
    check(f"{scenario}: a HorizontalPodAutoscaler per service", set(hpas) == set(COMPONENTS))
    for component, hpa in hpas.items():
        spec = hpa["spec"]
        check(f"{scenario}: {component} HPA is autoscaling/v2, 3 to {spec.get('maxReplicas')} pods",
              hpa["apiVersion"] == "autoscaling/v2" and spec.get("minReplicas") == 3
              and spec.get("maxReplicas", 0) >= 3
              and values[VALUES_KEYS[component]]["replicaCount"] == 3)
        check(f"{scenario}: {component} HPA scales its Deployment, which leaves replicas to it",
              spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name_of(component)}
              and "replicas" not in deployments[component]["spec"])
        metrics = {m["resource"]["name"] for m in spec.get("metrics", [])}
        check(f"{scenario}: {component} HPA on CPU and memory", metrics == {"cpu", "memory"})
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        check(f"{scenario}: {component_of(pdb)} PDB keeps 2 pods available",
              pdb["spec"].get("minAvailable") == 2 and "maxUnavailable" not in pdb["spec"])
    check_network_policies(scenario, docs, values["networkPolicy"]["allowedNamespaces"],
                           values["networkPolicy"]["metricsNamespaces"])
    for component, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        tls = mounts.get("/etc/mci/tls", {})
        check(f"{scenario}: {component} mounts the TLS CA read-only at /etc/mci/tls",
              tls.get("readOnly") is True
              and volumes.get(tls.get("name"), {}).get("secret", {}).get("secretName")
              == values["tls"]["caSecretName"])
        spread = pod.get("topologySpreadConstraints", [])
        check(f"{scenario}: {component} spreads over zones and nodes with its own selector",
              len(spread) == 2 and all(s["labelSelector"]["matchLabels"]
                                       == d["spec"]["selector"]["matchLabels"] for s in spread))
    for cm in of_kind(docs, "ConfigMap"):
        urls = cm["data"]["MCI_NATS_URL"].split(",")
        check(f"{scenario}: {component_of(cm)} uses the NATS cluster over TLS with the CA",
              len(urls) == 3 and all(u.startswith("tls://") for u in urls)
              and cm["data"].get("MCI_NATS_CA_FILE", "").startswith("/etc/mci/tls/"), str(urls))

    scenario = "values-production.yaml without HPA"
    args = ["-f", PRODUCTION]
    for key in VALUES_KEYS.values():
        args += ["--set", f"{key}.autoscaling.enabled=false"]
    docs, _ = render(scenario, *args)
    check_replicas(scenario, docs, 3)
    check(f"{scenario}: no HorizontalPodAutoscaler", not of_kind(docs, "HorizontalPodAutoscaler"))


def check_network_policies(scenario, docs, namespaces, metrics_namespaces):
    policies = {component_of(d): d for d in of_kind(docs, "NetworkPolicy")}
    check(f"{scenario}: a NetworkPolicy per service", set(policies) == set(COMPONENTS))
    deployments = {component_of(d): d for d in of_kind(docs, "Deployment")}
    for component, policy in policies.items():
        spec = policy["spec"]
        _, grpc_port, http_port = COMPONENTS[component]
        rules = spec.get("ingress", [])
        grpc_rule = next((r for r in rules if r["ports"] == [{"port": grpc_port,
                                                              "protocol": "TCP"}]), {})
        sources = grpc_rule.get("from", [])
        allowed = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                   for s in sources if "namespaceSelector" in s}
        pods = [s["podSelector"]["matchLabels"] for s in sources if "podSelector" in s]
        check(f"{scenario}: {component} NetworkPolicy selects its pods, ingress only",
              spec["podSelector"]["matchLabels"]
              == deployments[component]["spec"]["selector"]["matchLabels"]
              and spec.get("policyTypes") == ["Ingress"])
        check(f"{scenario}: {component} gRPC only from the chart's services and {namespaces}",
              allowed == set(namespaces)
              and pods == [{"app.kubernetes.io/name": "mci",
                            "app.kubernetes.io/instance": RELEASE}]
              and all(set(s) <= {"namespaceSelector", "podSelector"} for s in sources)
              and all(not ("namespaceSelector" in s and "podSelector" in s) for s in sources),
              str(sources))
        metrics_rule = [r for r in rules if r is not grpc_rule]
        if metrics_namespaces:
            got = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                   for r in metrics_rule for s in r["from"]}
            check(f"{scenario}: {component} metrics only from {metrics_namespaces}",
                  got == set(metrics_namespaces)
                  and all(r["ports"] == [{"port": http_port, "protocol": "TCP"}]
                          for r in metrics_rule))
        else:
            check(f"{scenario}: {component} no other ingress", not metrics_rule)


def network_policy_enabled():
    scenario = "networkPolicy.enabled"
    docs, _ = render(scenario, "--set", "networkPolicy.enabled=true",
                     "--set", "networkPolicy.allowedNamespaces[0]=frontend")
    if docs:
        check_network_policies(scenario, docs, ["frontend"], [])


def schema_rejects_bad_values():
    for args, what in ((["--set", "catalog.grpcPort=not-a-port"], "a non-numeric port"),
                       (["--set", "replicaCount=3"], "an unknown top-level key"),
                       (["--set", "logLevel=verbose"], "an unknown log level"),
                       (["--set", "tls.caSecretName=a", "--set", "tls.caConfigMapName=b"],
                        "two CA sources")):
        result = run_chart_check(*args)
        check(f"values.schema.json rejects {what}",
              result.returncode != 0 and "schema" in result.stderr, result.stderr.strip()[-200:])


def main():
    default_values()
    existing_secret()
    production()
    network_policy_enabled()
    schema_rejects_bad_values()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
