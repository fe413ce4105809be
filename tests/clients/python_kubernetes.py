"""The official Python client (`kubernetes` on PyPI) against Mosaic.

Typed CoreV1 and the dynamic client: version, create/list/watch/resume/
patch/delete of Tasks, ConfigMaps and Secrets (with stringData). Usage:
python_kubernetes.py NAMESPACE, with KUBECONFIG set. Exits non-zero with a
message on the first thing that is not as against kube-apiserver.
"""

import base64
import os
import sys
import time

from kubernetes import client, config, dynamic, watch

NS = sys.argv[1]
GROUP, VERSION = "mosaic.dev", "v1alpha1"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def task(name, labels=None):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Task",
        "metadata": {"name": name, "labels": labels or {"client": "python"}},
        "spec": {"command": "sleep 30", "resources": {"cpus": "10m", "memory": "16Mi"}},
    }


def main():
    config.load_kube_config(os.environ["KUBECONFIG"])
    api = client.ApiClient()

    # /version/ (with the slash): VersionApi().get_code().
    code = client.VersionApi(api).get_code()
    check(code.major == "1" and code.git_version.startswith("v1."), f"version: {code}")

    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))

    # ConfigMaps: create, list by label, patch, read.
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", labels={"client": "python"}),
            data={"a": "1"},
        ),
    )
    names = [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="client=python").items]
    check(names == ["settings"], f"configmaps by label: {names}")
    core.patch_namespaced_config_map("settings", NS, {"data": {"b": "2"}})
    cm = core.read_namespaced_config_map("settings", NS)
    check(cm.data == {"a": "1", "b": "2"}, f"patched configmap data: {cm.data}")

    # A ConfigMap with a number (sent as is, through the dynamic client: the
    # typed one checks first) is refused, 422 naming the field, so every later
    # typed list of the namespace still deserialises.
    dyn = dynamic.DynamicClient(api)
    try:
        dyn.resources.get(api_version="v1", kind="ConfigMap").create(
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": 1}},
            namespace=NS,
        )
        raise AssertionError("a ConfigMap with a number in data was accepted")
    except dynamic.exceptions.DynamicApiError as e:
        check(e.status == 422 and "data.a" in str(e.body), f"non-string ConfigMap: {e.status} {e.body}")
    check(len(core.list_namespaced_config_map(NS).items) == 1, "configmaps after the refusal")

    # Secrets: stringData becomes data, type Opaque, no stringData.
    core.create_namespaced_secret(
        NS, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), string_data={"password": "hunter2"})
    )
    s = core.read_namespaced_secret("db", NS)
    check(s.type == "Opaque", f"secret type: {s.type}")
    check(base64.b64decode(s.data["password"]) == b"hunter2", f"secret data: {s.data}")
    check(s.string_data is None, f"stringData kept: {s.string_data}")
    core.delete_namespaced_secret("db", NS)
    check(core.list_namespaced_secret(NS).items == [], "secrets after delete")

    # Tasks through CustomObjectsApi: create, list, then watch from the
    # list's resourceVersion (a resume): the task created after it arrives.
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, VERSION, NS, "tasks", task("first"))
    listed = co.list_namespaced_custom_object(GROUP, VERSION, NS, "tasks")
    check([t["metadata"]["name"] for t in listed["items"]] == ["first"], f"tasks: {listed['items']}")
    rv = listed["metadata"]["resourceVersion"]
    co.create_namespaced_custom_object(GROUP, VERSION, NS, "tasks", task("second"))
    seen = []
    w = watch.Watch()
    for ev in w.stream(
        co.list_namespaced_custom_object, GROUP, VERSION, NS, "tasks", resource_version=rv, timeout_seconds=20
    ):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        if ("ADDED", "second") in seen:
            w.stop()
    check(("ADDED", "second") in seen, f"watch resumed at {rv} saw {seen}")
    check(("ADDED", "first") not in seen, f"watch resumed at {rv} replayed the first task: {seen}")

    # The dynamic client: discovery, get, merge patch, label selector, delete.
    tasks = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Task")
    first = tasks.get(name="first", namespace=NS)
    check(first.spec.command == "sleep 30", f"dynamic get: {first}")
    tasks.patch(
        name="first",
        namespace=NS,
        body={"metadata": {"labels": {"patched": "yes"}}},
        content_type="application/merge-patch+json",
    )
    got = tasks.get(namespace=NS, label_selector="patched=yes")
    check([t.metadata.name for t in got.items] == ["first"], f"by patched label: {got.items}")
    for name in ("first", "second"):
        tasks.delete(name=name, namespace=NS)
    deadline = time.time() + 60
    while tasks.get(namespace=NS).items:
        check(time.time() < deadline, "tasks still there 60 s after delete")
        time.sleep(0.2)
    print("python kubernetes: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"python kubernetes: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
