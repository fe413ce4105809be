"""kr8s (PyPI) against Mosaic: version (kr8s's first call, `/version/`),
whoami, a Task class made with new_class, create/get/list by label/patch/
watch from a resourceVersion/delete, a ConfigMap and a Secret with stringData.
Usage: kr8s_flow.py NAMESPACE, with KUBECONFIG set.
"""

import base64
import os
import sys
import time

import kr8s
from kr8s.objects import ConfigMap, Namespace, Secret, new_class

NS = sys.argv[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    api = kr8s.api(kubeconfig=os.environ["KUBECONFIG"])
    v = api.version()
    check(v["major"] == "1", f"version: {v}")
    who = api.whoami()
    check(who == "mosaic:admin", f"whoami: {who}")

    Namespace({"metadata": {"name": NS}}, api=api).create()
    Task = new_class(kind="Task", version="mosaic.dev/v1alpha1", namespaced=True)

    def task(name):
        return Task(
            {
                "metadata": {"name": name, "namespace": NS, "labels": {"client": "kr8s"}},
                "spec": {"command": "sleep 30", "resources": {"cpus": "10m", "memory": "16Mi"}},
            },
            api=api,
        )

    first = task("first")
    first.create()
    check(first.metadata.uid, "a created task has its uid")
    listed = list(api.get(Task, namespace=NS, label_selector={"client": "kr8s"}))
    check([t.name for t in listed] == ["first"], f"tasks by label: {listed}")
    rv = first.metadata.resourceVersion
    first.patch({"metadata": {"labels": {"patched": "yes"}}}, type="merge")
    first.refresh()
    check(first.labels.get("patched") == "yes", f"patched labels: {first.labels}")

    # Watch from the created task's resourceVersion: the patch, then the second task.
    task("second").create()
    seen = []
    deadline = time.time() + 20
    for event, obj in api.watch(Task, namespace=NS, since=rv):
        seen.append((event, obj.name))
        if ("ADDED", "second") in seen or time.time() > deadline:
            break
    check(("MODIFIED", "first") in seen and ("ADDED", "second") in seen, f"watch since {rv}: {seen}")

    cm = ConfigMap({"metadata": {"name": "settings", "namespace": NS}, "data": {"a": "1"}}, api=api)
    cm.create()
    cm.patch({"data": {"b": "2"}})
    cm.refresh()
    check(cm.raw["data"] == {"a": "1", "b": "2"}, f"configmap: {cm.raw}")

    s = Secret({"metadata": {"name": "db", "namespace": NS}, "stringData": {"password": "hunter2"}}, api=api)
    s.create()
    s.refresh()
    check(s.raw.get("type") == "Opaque" and "stringData" not in s.raw, f"secret: {s.raw}")
    check(base64.b64decode(s.raw["data"]["password"]) == b"hunter2", f"secret data: {s.raw}")

    for name in ("first", "second"):
        Task.get(name, namespace=NS, api=api).delete()
    deadline = time.time() + 60
    while list(api.get(Task, namespace=NS)):
        check(time.time() < deadline, "tasks still there 60 s after delete")
        time.sleep(0.2)
    print("kr8s: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"kr8s: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
