#!/usr/bin/env python3
"""An Amplify-like dev environment in a local DynamoDB-compatible server, for `scripts/demo.sh promote`.

  amplify_dev.py build  [--endpoint URL] [--prefix P] [--count N]   tables and items
  amplify_dev.py change-quote [--endpoint URL] [--prefix P]          one quote's total changed

Tables `<P><Model>-fvn7t5hbobaxjklhrqzdl4ac34-dev` for Properties, Contacts, Requests, Projects, Quotes
and QuoteItems, named and shaped as Amplify's @model tables are: UUID ids, foreign keys (agentContactId,
addressId, projectId, quoteId...), a contact inside a map (Quotes.details.contactId), a list of contacts
(Projects.teamContactIds), createdAt/updatedAt/_version/_lastChangedAt/__typename. The data is the same
for a given seed. One quote item points at a quote that does not exist, as a deleted quote leaves it.

Only the Python standard library: DynamoDB's JSON protocol over urllib. A local server does not check
signatures, so the Authorization header only has to look like one.
"""

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid

SUFFIX = "-fvn7t5hbobaxjklhrqzdl4ac34-dev"
MODELS = ["Properties", "Contacts", "Requests", "Projects", "Quotes", "QuoteItems"]


def call(endpoint, operation, body):
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "X-Amz-Date": "20260101T000000Z",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as e:
        sys.exit(f"{operation} at {endpoint}: {e.code} {e.read().decode(errors='replace')}")
    except urllib.error.URLError as e:
        sys.exit(f"{operation} at {endpoint}: {e.reason}; is the local server running?")


def s(v):
    return {"S": v}


def n(v):
    return {"N": str(v)}


def generate(seed, count):
    rng = random.Random(seed)
    new_id = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    sizes = {m: (2 * count if m == "QuoteItems" else count) for m in MODELS}
    ids = {m: [new_id() for _ in range(sizes[m])] for m in MODELS}
    pick = lambda m: rng.choice(ids[m])
    tables = {}
    for model in MODELS:
        items = []
        for i, id_ in enumerate(ids[model]):
            item = {"id": s(id_)}
            if model == "Properties":
                item |= {"street": s(f"{rng.randint(1, 999)} Elm Street"), "city": s(rng.choice(["Austin", "Denver"]))}
            elif model == "Contacts":
                item |= {"name": s(f"Contact {i}"), "email": s(f"c{i}@example.com")}
            elif model == "Requests":
                item |= {
                    "agentContactId": s(pick("Contacts")),
                    "homeownerContactId": s(pick("Contacts")),
                    "addressId": s(pick("Properties")),
                    "status": s(rng.choice(["NEW", "QUOTED"])),
                }
            elif model == "Projects":
                item |= {
                    "agentContactId": s(pick("Contacts")),
                    "homeownerContactId": s(pick("Contacts")),
                    "addressId": s(pick("Properties")),
                    "teamContactIds": {"L": [s(pick("Contacts")) for _ in range(rng.randint(0, 3))]},
                    "budget": n(rng.randint(1000, 90000)),
                }
            elif model == "Quotes":
                item |= {
                    "projectId": s(pick("Projects")),
                    "agentContactId": s(pick("Contacts")),
                    "details": {"M": {"contactId": s(pick("Contacts")), "notes": s(f"quote {i}: roof")}},
                    "total": n(f"{rng.randint(100, 20000)}.{rng.randint(0, 99):02d}"),
                }
            else:
                item |= {
                    "projectId": s(pick("Projects")),
                    "quoteId": s(pick("Quotes")),
                    "description": s(f"line {i}"),
                    "quantity": n(rng.randint(1, 20)),
                }
            created = f"2024-03-{rng.randint(1, 28):02d}T10:00:00.000Z"
            item |= {
                "createdAt": s(created),
                "updatedAt": s(created),
                "_version": n(1),
                "_lastChangedAt": n(1709251200000 + i),
                "__typename": s(model[:-1]),
            }
            items.append(item)
        tables[model] = items
    # A quote item whose quote was deleted: promoting it would leave a dangling quoteId in prod.
    tables["QuoteItems"][0]["quoteId"] = s(new_id())
    return tables


def build(args):
    for model in MODELS:
        name = f"{args.prefix}{model}{SUFFIX}"
        call(
            args.endpoint,
            "CreateTable",
            {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            },
        )
        for _ in range(200):
            if call(args.endpoint, "DescribeTable", {"TableName": name})["Table"]["TableStatus"] == "ACTIVE":
                break
            time.sleep(0.05)
    for model, items in generate(args.seed, args.count).items():
        name = f"{args.prefix}{model}{SUFFIX}"
        for at in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[at : at + 25]]
            while requests:
                answer = call(args.endpoint, "BatchWriteItem", {"RequestItems": {name: requests}})
                requests = answer.get("UnprocessedItems", {}).get(name, [])
        print(f"{name}: {len(items)} items")


def change_quote(args):
    quote = generate(args.seed, args.count)["Quotes"][1]
    name = f"{args.prefix}Quotes{SUFFIX}"
    call(
        args.endpoint,
        "UpdateItem",
        {
            "TableName": name,
            "Key": {"id": quote["id"]},
            "UpdateExpression": "SET #t = :t, updatedAt = :u, #v = #v + :one",
            "ExpressionAttributeNames": {"#t": "total", "#v": "_version"},
            "ExpressionAttributeValues": {":t": n("4321.50"), ":u": s("2024-04-01T09:00:00.000Z"), ":one": n(1)},
        },
    )
    print(f"{name}: quote {quote['id']['S']} now totals 4321.50")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "change-quote"])
    parser.add_argument("--endpoint", default="http://127.0.0.1:8766")
    parser.add_argument("--prefix", default="", help="put before every table name")
    parser.add_argument("--count", type=int, default=200, help="items per table (QuoteItems: twice as many)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    build(args) if args.action == "build" else change_quote(args)


if __name__ == "__main__":
    main()
