"""The admin API's routes that take a group refuse an id naming no group (and no sync key)
with 404 naming the id, as the CLI verbs do; a known group's routes still answer."""

from __future__ import annotations

from tests.admin.conftest import AdminDaemon

UNKNOWN = 999


async def test_every_group_route_refuses_an_unknown_group_with_404_naming_it(
    daemon: AdminDaemon,
) -> None:
    async with daemon.client() as api:
        answers = {
            "key": await api.get(f"/api/keys/discord/{UNKNOWN}"),
            "keys of the group": await api.get("/api/keys", params={"group_id": UNKNOWN}),
            "retry": await api.post(f"/api/keys/discord/{UNKNOWN}/retry"),
            "resync preview": await api.post("/api/resync/preview",
                                             json={"group_id": UNKNOWN}),
            "resync": await api.post("/api/resync",
                                     json={"group_id": UNKNOWN, "confirm": True}),
            "acknowledge": await api.post(f"/api/attention/discord/{UNKNOWN}/ack",
                                          json={"note": "seen"}),
        }

    for route, answer in answers.items():
        assert answer.status_code == 404, (route, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", route
        assert f"unknown group {UNKNOWN}" in answer.json()["detail"], (route, answer.text)
