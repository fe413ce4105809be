#!/usr/bin/env python3
"""An external framework: Mesos two-level scheduling, declaratively.

It registers the External framework `word-count`, then watches the Offer
objects the control plane makes for it. For each offer it launches as many of
its pending jobs as fit (a Task with `spec.offer` naming the offer: accept),
and deletes the offers it has no use for (decline). It exits 0 once every job
has finished, 1 if one failed.

It talks to Mosaic only through kubectl (KUBECTL, default `kubectl`, with the
usual KUBECONFIG), so any language with a Kubernetes client can do the same.

    python3 examples/external-framework/framework.py --jobs 6

End state: tasks word-count-0 .. word-count-5 Finished, each placed on an
offer the framework accepted; the framework suppressed and no Offer of it left.
"""

import argparse
import json
import os
import subprocess
import sys
import time

FRAMEWORK = "word-count"
HERE = os.path.dirname(os.path.abspath(__file__))
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def kubectl(*args, stdin=None):
    out = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def millicores(q):
    q = str(q)
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=6, help="how many jobs to run")
    p.add_argument("--cpus", default="250m", help="CPUs per job")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for all jobs")
    args = p.parse_args()

    kubectl("apply", "-f", os.path.join(HERE, "framework.yaml"))
    need = millicores(args.cpus)
    pending = [f"{FRAMEWORK}-{i}" for i in range(args.jobs)]
    launched = []
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        offers = json.loads(kubectl("get", "offers", "-o", "json",
                                    "--field-selector", f"spec.framework={FRAMEWORK}"))["items"]
        for offer in offers:
            name = offer["metadata"]["name"]
            room = millicores(offer["spec"]["resources"]["cpus"])
            # Accept: every task for one offer is created together (as one
            # Mesos ACCEPT call carries all its tasks); the rest of the offer
            # then returns to the pool.
            tasks = []
            while pending and room >= need:
                job = pending.pop(0)
                tasks.append({
                    "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": job},
                    "spec": {"framework": FRAMEWORK, "offer": name,
                             "command": f"echo {job}: $(echo the quick brown fox | wc -w) words",
                             "resources": {"cpus": args.cpus, "memory": "32Mi"}},
                })
                room -= need
            if tasks:
                kubectl("create", "-f", "-", stdin="".join("---\n" + json.dumps(t) + "\n" for t in tasks))
                launched += [t["metadata"]["name"] for t in tasks]
                print(f"accepted offer {name} on {offer['spec']['agent']}: {len(tasks)} job(s)", flush=True)
            else:
                kubectl("delete", "offer", name, "--ignore-not-found")
                print(f"declined offer {name} on {offer['spec']['agent']}", flush=True)
        phases = {}
        if launched:
            tasks = json.loads(kubectl("get", "tasks", "-o", "json",
                                       "--field-selector", f"spec.framework={FRAMEWORK}"))["items"]
            phases = {t["metadata"]["name"]: t.get("status", {}).get("phase") for t in tasks}
        failed = [j for j in launched if phases.get(j) in ("Failed", "Error", "Lost", "Killed")]
        if failed:
            print(f"jobs failed: {failed}", file=sys.stderr)
            return 1
        if not pending and all(phases.get(j) == "Finished" for j in launched):
            print(f"all {len(launched)} jobs finished", flush=True)
            # No more offers wanted: the outstanding ones are rescinded.
            kubectl("patch", "framework", FRAMEWORK, "--type", "merge",
                    "-p", '{"spec": {"suppressed": true}}')
            return 0
        time.sleep(0.5)
    print(f"timed out; pending {pending}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
