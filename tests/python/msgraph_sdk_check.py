"""Compatibility check: the official Microsoft Graph SDK for Python against `entrasync graph-sim`.

Authenticates with azure-identity's ClientSecretCredential over HTTPS, walks users/delta and
groups/delta to a deltaLink, mutates the directory through the emulator's admin API, and checks the
next delta round reports exactly those changes. One line per check; exit status 1 on any mismatch.

Environment: SIM_BASE (https://127.0.0.1:PORT), SSL_CERT_FILE / REQUESTS_CA_BUNDLE (the emulator's CA).
"""

import asyncio
import os
import sys
import uuid
from urllib.parse import urlparse

import requests
from azure.identity import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient

SCOPE = "https://graph.microsoft.com/.default"
failures = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {name}{'' if ok else ' -- ' + detail}", flush=True)
    if not ok:
        failures.append(name)


class Admin:
    """The emulator's admin API (not part of Graph)."""

    def __init__(self, base, ca):
        self.base, self.ca = base, ca

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        response = requests.request(method, f"{self.base}/_sim{path}", json=body, verify=self.ca, timeout=30)
        if response.status_code not in expect:
            raise RuntimeError(f"admin {method} {path} -> {response.status_code} {response.text}")
        return response.json() if response.content else None


def plain(node):
    """Kiota's untyped nodes (additional_data) as plain Python values."""
    if hasattr(node, "get_value"):
        return plain(node.get_value())
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, uuid.UUID):  # kiota parses GUID-shaped strings into UUIDs
        return str(node)
    return node


async def walk(builder, first):
    """Follows nextLinks to the deltaLink; returns (objects, deltaLink, pages)."""
    page = await (builder.with_url(first).get() if first else builder.get())
    objects, pages = [], 1
    while True:
        objects.extend(page.value or [])
        if page.odata_next_link:
            page = await builder.with_url(page.odata_next_link).get()
            pages += 1
            continue
        return objects, page.odata_delta_link, pages


def summarize(objects):
    """id -> (removed reason or None, members@delta as {(id, removed?)}) keeping the last occurrence."""
    out = {}
    for obj in objects:
        extra = plain(obj.additional_data or {})
        removed = (extra.get("@removed") or {}).get("reason")
        members = {(m.get("id"), "@removed" in m) for m in extra.get("members@delta") or []}
        prev = out.get(obj.id, (None, set()))
        out[obj.id] = (removed, prev[1] | members)
    return out


async def main():
    base = os.environ["SIM_BASE"].rstrip("/")
    ca = os.environ["SSL_CERT_FILE"]
    admin = Admin(base, ca)
    host = urlparse(base).hostname

    tenant = admin.call("POST", "/tenants", {
        "domain": "sdkcheck.onmicrosoft.com", "seed": 42, "users": 40, "groups": 6,
        # Small pages force several nextLinks; no replays so the second round is exactly the changes.
        "settings": {"page_size": 7, "replay_rate": 0.0},
    })
    tenant_id = tenant["tenant_id"]
    secret = "sdk-check~" + uuid.uuid4().hex
    app = admin.call("POST", "/apps", {"display_name": "msgraph-sdk-check", "secret": secret,
                                       "roles": ["User.Read.All", "Group.Read.All"]})
    admin.call("POST", f"/tenants/{tenant_id}/consent",
               {"app_id": app["app_id"], "roles": ["User.Read.All", "Group.Read.All"]})

    credential = ClientSecretCredential(tenant_id, app["app_id"], secret, authority=base,
                                        disable_instance_discovery=True)
    token = credential.get_token(SCOPE)
    check("azure-identity ClientSecretCredential gets a token over HTTPS", bool(token.token))

    auth = AzureIdentityAuthenticationProvider(credential, scopes=[SCOPE], allowed_hosts=[host])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{base}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

    truth_users = admin.call("GET", f"/tenants/{tenant_id}/truth/users")
    truth_groups = admin.call("GET", f"/tenants/{tenant_id}/truth/groups")

    # The SDK spells the function `delta()`; Graph serves both spellings.
    start = {}
    for name, builder in (("users", client.users.delta), ("groups", client.groups.delta)):
        try:
            await builder.get()
            start[name] = None
            check(f"{name}/delta() as the SDK requests it is served", True)
        except Exception as e:  # report, then walk from the plain spelling so the other checks still run
            check(f"{name}/delta() as the SDK requests it is served", False, f"{type(e).__name__}: {e}")
            start[name] = f"{base}/v1.0/{name}/delta"

    users, users_link, pages = await walk(client.users.delta, start["users"])
    seen = summarize(users)
    check("users delta walk reaches a deltaLink", bool(users_link), f"pages={pages}")
    check("users delta walk spans several pages", pages > 1, f"pages={pages}")
    check("users delta walk returns every user", set(seen) == set(truth_users["objects"]),
          f"got {len(seen)}, want {len(truth_users['objects'])}")

    groups, groups_link, _ = await walk(client.groups.delta, start["groups"])
    seen_groups = summarize(groups)
    check("groups delta walk reaches a deltaLink", bool(groups_link))
    check("groups delta walk returns every group", set(seen_groups) == set(truth_groups["objects"]),
          f"got {len(seen_groups)}, want {len(truth_groups['objects'])}")
    got_members = {g: {m for m, _ in v[1]} for g, v in seen_groups.items() if v[1]}
    want_members = {g: set(m) for g, m in truth_groups["memberships"].items() if m}
    diff = {g: (len(got_members.get(g, ())), len(want_members.get(g, ())))
            for g in set(got_members) | set(want_members) if got_members.get(g) != want_members.get(g)}
    check("groups delta walk carries every membership in members@delta", not diff,
          f"group: (got, want) member counts {diff}")

    # Mutations: one new user, one updated, one soft-deleted; one member added, one removed, one group renamed.
    user_ids = sorted(truth_users["objects"])
    new_user = admin.call("POST", f"/tenants/{tenant_id}/users",
                          {"displayName": "SDK Check", "userPrincipalName": "sdk.check@sdkcheck.onmicrosoft.com"})["id"]
    updated_user, deleted_user = user_ids[0], user_ids[1]
    admin.call("PATCH", f"/tenants/{tenant_id}/objects/{updated_user}", {"jobTitle": "Compatibility Tester"})
    admin.call("DELETE", f"/tenants/{tenant_id}/objects/{deleted_user}")
    group_with_members = sorted(g for g, m in truth_groups["memberships"].items() if m)
    grown = sorted(truth_groups["objects"])[0]
    shrunk = group_with_members[-1]
    removed_member = sorted(truth_groups["memberships"][shrunk])[0]
    renamed = next(g for g in sorted(truth_groups["objects"]) if g not in (grown, shrunk))
    admin.call("POST", f"/tenants/{tenant_id}/groups/{grown}/members", {"id": new_user})
    admin.call("DELETE", f"/tenants/{tenant_id}/groups/{shrunk}/members/{removed_member}")
    admin.call("PATCH", f"/tenants/{tenant_id}/objects/{renamed}", {"displayName": "Renamed by SDK check"})

    users, next_users_link, _ = await walk(client.users.delta, users_link)
    changed = summarize(users)
    check("users delta round reaches a new deltaLink", bool(next_users_link))
    check("users delta round reports exactly the changed users",
          set(changed) == {new_user, updated_user, deleted_user}, f"got {sorted(changed)}")
    check("soft-deleted user comes with @removed reason changed", changed.get(deleted_user, (None,))[0] == "changed",
          f"got {changed.get(deleted_user)}")
    check("new and updated users come without @removed",
          all(changed.get(u, ("missing",))[0] is None for u in (new_user, updated_user)))
    updated = next((u for u in users if u.id == updated_user), None)
    check("updated user carries its new jobTitle", updated is not None and updated.job_title == "Compatibility Tester",
          f"got {updated and updated.job_title}")

    groups, next_groups_link, _ = await walk(client.groups.delta, groups_link)
    changed = summarize(groups)
    check("groups delta round reaches a new deltaLink", bool(next_groups_link))
    check("groups delta round reports exactly the changed groups", set(changed) == {grown, shrunk, renamed},
          f"got {sorted(changed)}")
    check("added member appears in members@delta", changed.get(grown, (None, set()))[1] == {(new_user, False)},
          f"got {changed.get(grown)}")
    check("removed member appears in members@delta with @removed",
          changed.get(shrunk, (None, set()))[1] == {(removed_member, True)}, f"got {changed.get(shrunk)}")
    renamed_obj = next((g for g in groups if g.id == renamed), None)
    check("renamed group carries its new displayName",
          renamed_obj is not None and renamed_obj.display_name == "Renamed by SDK check")

    users, _, _ = await walk(client.users.delta, next_users_link)
    check("a further users delta round is empty", summarize(users) == {}, f"got {sorted(summarize(users))}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # any SDK or admin failure is a failed check, reported on one line
        check("check ran to completion", False, f"{type(e).__name__}: {e}")
    print(f"msgraph-sdk check: {'FAILED ' + str(len(failures)) if failures else 'all passed'}")
    sys.exit(1 if failures else 0)
