"""The `marathon` client (0.13.0, from PyPI, unchanged) against Mosaic's
Marathon API (--marathon-listen): create, list, get, scale, list tasks, kill a
task with and without scale, kill given tasks, kill an app's tasks (by host,
with scale), delete, with an app definition from Marathon's own
documentation (Application Basics). The same app is visible through kubectl.
Credentials are a token (Marathon's `Authorization: token=`); none is 401,
one RBAC does not allow is 403. Fields Mosaic cannot honour are refused with
Marathon's error shape naming them.

Usage: marathon_flow.py URL TOKEN DENIED_TOKEN; KUBECTL and KUBECONFIG in the
environment. Prints "marathon: ok" when every step held."""

import json
import os
import subprocess
import sys
import time

import requests
from marathon import MarathonApp, MarathonClient
from marathon.exceptions import MarathonHttpError

URL, TOKEN, DENIED = sys.argv[1], sys.argv[2], sys.argv[3]


def wait(what, cond, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def kubectl(*args):
    out = subprocess.run(
        [os.environ["KUBECTL"], *args], capture_output=True, text=True, check=True
    )
    return out.stdout


def refused(code, fn):
    try:
        fn()
    except MarathonHttpError as e:
        assert e.status_code == code, f"{e.status_code} (wanted {code}): {e}"
        return e
    raise AssertionError(f"not refused (wanted {code})")


# Application Basics (https://mesosphere.github.io/marathon/docs/application-basics.html).
basic = json.loads(
    """{"id": "basic-0",
        "cmd": "while [ true ] ; do echo 'Hello Marathon' ; sleep 5 ; done",
        "cpus": 0.1, "mem": 10.0, "instances": 1}"""
)

# No credentials, and credentials RBAC does not allow.
refused(401, lambda: MarathonClient(URL).list_apps())
refused(403, lambda: MarathonClient(URL, auth_token=DENIED).list_apps())

c = MarathonClient(URL, auth_token=TOKEN)
app_id = basic.pop("id")
made = c.create_app(app_id, MarathonApp(**basic))
assert made and made.id == "/basic-0", made
assert made.instances == 1 and made.cpus == 0.1 and made.mem == 10.0, made.__dict__
refused(409, lambda: c.create_app(app_id, MarathonApp(**basic)))

assert [a.id for a in c.list_apps()] == ["/basic-0"]
got = c.get_app("/basic-0")
assert got.cmd == basic["cmd"], got.cmd
assert "basic-0" in kubectl("get", "apps", "-o", "name"), "kubectl sees the App"

running = lambda n: (lambda: (lambda ts: ts if len(ts) == n and all(t.state == "TASK_RUNNING" for t in ts) else None)(c.list_tasks("/basic-0")))
tasks = wait("1 task running", running(1))
assert tasks[0].app_id == "/basic-0" and tasks[0].host and tasks[0].started_at, tasks[0].__dict__

c.scale_app("/basic-0", instances=3)
tasks = wait("3 tasks running", running(3))
assert c.get_app("/basic-0").instances == 3
assert len([t for t in c.list_tasks() if t.app_id == "/basic-0"]) == 3, "GET /v2/tasks"

# Killing one with scale: two left, and the app asks for two.
victim = tasks[0].id
c.kill_task("/basic-0", victim, scale=True)
wait("2 tasks running, the killed one gone", lambda: (lambda ts: len(ts) == 2 and victim not in [t.id for t in ts] and all(t.state == "TASK_RUNNING" for t in ts))(c.list_tasks("/basic-0")))
assert c.get_app("/basic-0").instances == 2
# Killing one without scale: it is replaced.
other = c.list_tasks("/basic-0")[0].id
killed = c.kill_task("/basic-0", other)
assert killed.id == other, killed
wait("a replacement", lambda: (lambda ts: len(ts) == 2 and other not in [t.id for t in ts] and all(t.state == "TASK_RUNNING" for t in ts))(c.list_tasks("/basic-0")))
refused(404, lambda: c.kill_task("/basic-0", "no-such-task"))

# What Mosaic cannot honour is refused by path, in Marathon's shape (sent raw:
# the client's own encoder of nested fields does not run on Python 3.10+).
r = requests.post(
    URL + "/v2/apps",
    headers={"Authorization": "token=" + TOKEN},
    json={"id": "/boxed", "cmd": "sleep 1", "container": {"type": "DOCKER", "docker": {"image": "nginx"}},
          "healthChecks": [{"protocol": "HTTPS"}]},
)
assert r.status_code == 422, (r.status_code, r.text)
paths = [d["path"] for d in r.json()["details"]]
assert paths == ["/container", "/healthChecks(0)/protocol"], r.text

# HTTP Basic with the token as the password works as well.
r = requests.get(URL + "/v2/apps", auth=("anyone", TOKEN))
assert r.status_code == 200 and r.json()["apps"][0]["id"] == "/basic-0", r.text

# A change that cannot finish (its health check never passes) stays a
# deployment; deleting the deployment rolls the app back to what it ran.
auth = {"Authorization": "token=" + TOKEN}
r = requests.patch(
    URL + "/v2/apps/basic-0",
    headers=auth,
    json={"healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"},
                            "gracePeriodSeconds": 1, "intervalSeconds": 1, "maxConsecutiveFailures": 1000}]},
)
assert r.status_code == 200, r.text
deployment = r.json()["deploymentId"]
listed = wait("the deployment listed", lambda: [d for d in requests.get(URL + "/v2/deployments", headers=auth).json() if d["id"] == deployment])
assert listed[0]["affectedApps"] == ["/basic-0"], listed
r = requests.delete(URL + "/v2/deployments/" + deployment, headers=auth)
assert r.status_code == 200 and r.json()["deploymentId"] != deployment, r.text
wait("rolled back: no health check, no deployment", lambda: c.get_app("/basic-0").health_checks == [] and requests.get(URL + "/v2/deployments", headers=auth).json() == [])
# A restart replaces every task.
before = {t.id for t in c.list_tasks("/basic-0")}
r = requests.post(URL + "/v2/apps/basic-0/restart", headers=auth)
assert r.status_code == 200 and r.json()["deploymentId"], r.text
wait("every task replaced", lambda: (lambda ts: len(ts) == 2 and not ({t.id for t in ts} & before) and all(t.state == "TASK_RUNNING" for t in ts))(c.list_tasks("/basic-0")))

# Killing given tasks by id (POST /v2/tasks/delete): replaced; an id that
# names no task is refused.
given = c.list_tasks("/basic-0")[0].id
assert c.kill_given_tasks([given])
wait("the given one replaced", lambda: (lambda ts: len(ts) == 2 and given not in [t.id for t in ts] and all(t.state == "TASK_RUNNING" for t in ts))(c.list_tasks("/basic-0")))
r = requests.post(URL + "/v2/tasks/delete", headers=auth, json={"ids": ["../../agents"]})
assert r.status_code == 400 and "Invalid task id" in r.json()["message"], r.text
# The same id twice, with scale: killed once, and the app asks for one fewer.
dup = c.list_tasks("/basic-0")[0].id
assert c.kill_given_tasks([dup, dup], scale=True)
wait("one task left, not the killed one", lambda: (lambda ts: len(ts) == 1 and ts[0].id != dup and ts[0].state == "TASK_RUNNING")(c.list_tasks("/basic-0")))
assert c.get_app("/basic-0").instances == 1
c.scale_app("/basic-0", instances=2)
wait("2 tasks running again", running(2))

# Killing an app's tasks on a host (DELETE /v2/apps/{id}/tasks): the killed
# are answered and replaced; a host with none kills nothing; with scale, the
# app asks for as many fewer.
before = c.list_tasks("/basic-0")
host = before[0].host
killed = c.kill_tasks("/basic-0", host=host)
assert sorted(t.id for t in killed) == sorted(t.id for t in before if t.host == host), killed
wait("the killed replaced", lambda: (lambda ts: len(ts) == 2 and not ({t.id for t in ts} & {t.id for t in killed}) and all(t.state == "TASK_RUNNING" for t in ts))(c.list_tasks("/basic-0")))
assert c.kill_tasks("/basic-0", host="no-such-host") == []
r = requests.delete(URL + "/v2/apps/basic-0/tasks?scale=true&wipe=true", headers=auth)
assert r.status_code == 400 and "scale and wipe" in r.json()["message"], r.text
scaled = c.kill_tasks("/basic-0", scale=True, host="*")
assert scaled["deploymentId"], scaled
wait("no tasks left", lambda: c.list_tasks("/basic-0") == [])
assert c.get_app("/basic-0").instances == 0

c.delete_app("/basic-0")
wait("the app gone", lambda: c.list_apps() == [])
wait("its tasks gone", lambda: "basic-0" not in kubectl("get", "tasks", "-o", "name"))
refused(404, lambda: c.get_app("/basic-0"))
assert c.ping(), "ping"
info = c.get_info()
assert info.name == "marathon", info.name
print("marathon: ok")
