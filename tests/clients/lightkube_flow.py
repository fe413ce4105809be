"""lightkube (PyPI) against Mosaic: a generic namespaced resource for Task,
create/list/patch/watch from a resourceVersion/server-side apply/delete, and
typed ConfigMap and Secret models (stringData). Usage: lightkube_flow.py
NAMESPACE, with KUBECONFIG set.
"""

import base64
import os
import sys
import time

from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
from lightkube.types import PatchType

NS = sys.argv[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    client = Client(KubeConfig.from_file(os.environ["KUBECONFIG"]), field_manager="lightkube")
    client.create(Namespace(metadata=ObjectMeta(name=NS)))
    Task = create_namespaced_resource("mosaic.dev", "v1alpha1", "Task", "tasks")

    def task(name, command="sleep 30"):
        return Task(
            metadata=ObjectMeta(name=name, labels={"client": "lightkube"}),
            spec={"command": command, "resources": {"cpus": "10m", "memory": "16Mi"}},
        )

    created = client.create(task("first"), namespace=NS)
    check(created.metadata.uid, "a created task has its uid")
    names = [t.metadata.name for t in client.list(Task, namespace=NS, labels={"client": "lightkube"})]
    check(names == ["first"], f"tasks by label: {names}")
    rv = created.metadata.resourceVersion
    client.patch(Task, "first", {"metadata": {"labels": {"patched": "yes"}}}, namespace=NS, patch_type=PatchType.MERGE)
    check(client.get(Task, "first", namespace=NS).metadata.labels.get("patched") == "yes", "merge patch")

    # Server-side apply of a second task, as lightkube's field manager.
    applied = client.apply(task("second"), namespace=NS)
    managers = [m.manager for m in applied.metadata.managedFields or []]
    check("lightkube" in managers, f"managedFields after apply: {managers}")

    seen = []
    deadline = time.time() + 20
    for op, obj in client.watch(Task, namespace=NS, resource_version=rv):
        seen.append((op, obj.metadata.name))
        if ("ADDED", "second") in seen or time.time() > deadline:
            break
    check(("MODIFIED", "first") in seen and ("ADDED", "second") in seen, f"watch from {rv}: {seen}")

    client.create(ConfigMap(metadata=ObjectMeta(name="settings"), data={"a": "1"}), namespace=NS)
    cm = client.patch(ConfigMap, "settings", {"data": {"b": "2"}}, namespace=NS)
    check(cm.data == {"a": "1", "b": "2"}, f"configmap: {cm.data}")
    client.create(Secret(metadata=ObjectMeta(name="db"), stringData={"password": "hunter2"}), namespace=NS)
    s = client.get(Secret, "db", namespace=NS)
    check(s.type == "Opaque" and s.stringData is None, f"secret: {s}")
    check(base64.b64decode(s.data["password"]) == b"hunter2", f"secret data: {s.data}")

    for name in ("first", "second"):
        client.delete(Task, name, namespace=NS)
    deadline = time.time() + 60
    while list(client.list(Task, namespace=NS)):
        check(time.time() < deadline, "tasks still there 60 s after delete")
        time.sleep(0.2)
    print("lightkube: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"lightkube: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
