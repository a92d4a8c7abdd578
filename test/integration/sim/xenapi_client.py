"""Drives the simulator with os_xenapi's XenAPI client (an independent XML-RPC implementation).

Usage: xenapi_client.py <url> <user> <password>; prints one JSON object with what it saw.
"""
import json
import sys
import time

from os_xenapi.client import XenAPI

url, user, password = sys.argv[1:4]
out = {}
session = XenAPI.Session(url)
session.xenapi.login_with_password(user, password, "1.0", "xenapi-test")
x = session.xenapi
records = x.VM.get_all_records()
out["vms"] = sorted(
    r["name_label"]
    for r in records.values()
    if not r["is_a_template"] and not r["is_control_domain"]
)
out["types"] = {
    k: type(v).__name__ for k, v in next(iter(records.values())).items()
    if k in ("memory_static_max", "is_a_template", "snapshot_time", "VBDs", "other_config")
}
vm = x.VM.get_by_name_label("web")[0]
task = x.Async.VM.snapshot(vm, "py-snap")
statuses = []
while True:
    status = x.task.get_status(task)
    statuses.append(status)
    if status != "pending":
        break
    time.sleep(0.01)
record = x.task.get_record(task)
out["task"] = {"status": record["status"], "result": record["result"], "progress": record["progress"]}
snap = record["result"].replace("<value>", "").replace("</value>", "")
out["snapshot"] = {k: x.VM.get_record(snap)[k] for k in ("is_a_snapshot", "is_a_template", "power_state", "snapshot_of")}
out["web"] = vm
x.task.destroy(task)
try:
    x.VM.get_record("OpaqueRef:does-not-exist")
except XenAPI.Failure as failure:
    out["error"] = failure.details
try:
    x.VM.clone(vm, "running-clone")
except XenAPI.Failure as failure:
    out["power_error"] = failure.details
x.logout()
print(json.dumps(out))
