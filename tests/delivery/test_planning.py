"""Planning records into guarded requests: what a subscriber record may send."""

from __future__ import annotations

from relay.delivery.entity_rules import epoch
from relay.delivery.planning import requests_for
from relay.mapping import Record
from tests import sdk_oracle


def subscriber(modified: str = "2024-03-05T09:42:11Z", **data) -> Record:
    return Record("subscriber", {"email": "grace@example.com", **data}, modified_at=modified)


def test_a_subscriber_plans_a_create_and_an_update_by_its_external_id():
    record = subscriber(externalId="shop/7&x", firstName="Grace", createdAt="2021-06-14T15:03:27Z")
    create, update = requests_for(record)
    assert (create.method, create.path) == ("POST", "/api/v1/subscribers")
    assert create.body == {**record.data, "duplicateStrategy": "merge"}
    # The id travels in the query, encoded; the names as text ("" clears), never null.
    assert (update.method, update.path) == (
        "PATCH",
        "/api/v1/subscribers/external?externalId=shop%2F7%26x",
    )
    assert update.body == {"email": "grace@example.com", "firstName": "Grace", "lastName": ""}
    assert create.entity == update.entity == "subscriber:shop/7&x"
    assert update.guard == {
        "entity": "subscriber:shop/7&x",
        "rule": "subscriber",
        "modified": epoch("2024-03-05T09:42:11Z"),
        "fingerprint": create.guard["fingerprint"],
    }
    for request in (create, update):
        path, query = sdk_oracle.split(request.path)
        assert sdk_oracle.check_request(request.method, path, query, request.body) == []


def test_a_subscriber_without_an_external_id_is_only_created_keyed_by_its_email():
    [create] = requests_for(subscriber(email="Grace@Example.com"))
    [same] = requests_for(subscriber(email="grace@example.com"))
    assert create.method == "POST"
    assert create.entity == same.entity
    assert create.entity.startswith("subscriber:email:")
    assert "grace" not in create.entity.lower()  # a digest: entities are logged


def test_a_change_undone_later_is_a_new_update_to_an_api_that_honours_keys():
    first = requests_for(subscriber("2024-03-05T10:00:00Z", externalId="7", firstName="A"))[1]
    between = requests_for(subscriber("2024-03-05T11:00:00Z", externalId="7", firstName="B"))[1]
    back = requests_for(subscriber("2024-03-05T12:00:00Z", externalId="7", firstName="A"))[1]
    assert len({first.key, between.key, back.key}) == 3
    retried = requests_for(subscriber("2024-03-05T10:00:00Z", externalId="7", firstName="A"))[1]
    assert retried.key == first.key
