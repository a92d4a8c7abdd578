"""A user working on the destination pool with os_xenapi's XenAPI (not xcr's client): copies a
recovery point the ways XAPI offers and starts one of the copies.

Usage: user_copies.py <url> <user> <password> <recovery-point-uuid>; prints the uuids it made as JSON.
"""
import json
import sys

from os_xenapi.client import XenAPI

url, user, password, rp_uuid = sys.argv[1:5]
session = XenAPI.Session(url)
session.xenapi.login_with_password(user, password, "1.0", "user-copies")
x = session.xenapi
rp = x.VM.get_by_uuid(rp_uuid)
disk = next(
    x.VBD.get_VDI(vbd) for vbd in x.VM.get_VBDs(rp) if x.VBD.get_type(vbd) == "Disk"
)
sr = x.VDI.get_SR(disk)

halted = x.VM.clone(rp, "failover test (halted)")
running = x.VM.clone(rp, "failover (running)")
x.VM.remove_from_blocked_operations(running, "start")
x.VM.start(running, False, False)
snapshot_of_clone = x.VM.snapshot(halted, "user snapshot of the clone")
vdi_copy = x.VDI.copy(disk, sr)
vdi_clone = x.VDI.clone(disk, {})

out = {
    "halted": x.VM.get_uuid(halted),
    "running": x.VM.get_uuid(running),
    "running_state": x.VM.get_power_state(running),
    "snapshot_of_clone": x.VM.get_uuid(snapshot_of_clone),
    "vdi_copy": x.VDI.get_uuid(vdi_copy),
    "vdi_clone": x.VDI.get_uuid(vdi_clone),
    "copied_keys": sorted(k for k in x.VDI.get_other_config(vdi_copy) if k.startswith("xcr:")),
}
session.xenapi.logout()
print(json.dumps(out))
