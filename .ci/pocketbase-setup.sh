#!/usr/bin/env bash
# Configures a fresh PocketBase on $1 (base URL, e.g. http://127.0.0.1:18490) for the tests:
# a `people` collection with a case-insensitive unique userName, a non-superuser auth
# collection `provisioners` allowed to list/create/update/delete people (leavers), one provisioner account,
# and a real rate limit on creates (429 without Retry-After). Superusers are exempt from
# rate limits, which is why the tests provision as a provisioner.
set -euo pipefail
PB=$1
SU_EMAIL=${2:-admin@example.com}
SU_PASS=${3:-Sup3rSecret!pw}
PROV_EMAIL=${4:-provisioner@example.com}
PROV_PASS=${5:-Prov1sioner!pw}

json() { curl -sS -f -H 'Content-Type: application/json' "$@"; }

TOKEN=$(json -X POST "$PB/api/collections/_superusers/auth-with-password" \
  -d "{\"identity\":\"$SU_EMAIL\",\"password\":\"$SU_PASS\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
AUTH=(-H "Authorization: $TOKEN")

RULE="@request.auth.collectionName = 'provisioners'"
json "${AUTH[@]}" -X POST "$PB/api/collections" -d @- >/dev/null <<JSON
{"name":"provisioners","type":"auth",
 "fields":[],
 "listRule":null,"viewRule":null,"createRule":null,"updateRule":null,"deleteRule":null}
JSON
json "${AUTH[@]}" -X POST "$PB/api/collections" -d @- >/dev/null <<JSON
{"name":"people","type":"base",
 "fields":[
   {"name":"userName","type":"text","required":true},
   {"name":"email","type":"text"},
   {"name":"givenName","type":"text"},
   {"name":"familyName","type":"text"},
   {"name":"active","type":"bool"}],
 "indexes":["CREATE UNIQUE INDEX idx_people_userName ON people (userName COLLATE NOCASE)"],
 "listRule":"$RULE","viewRule":"$RULE","createRule":"$RULE","updateRule":"$RULE","deleteRule":"$RULE"}
JSON
json "${AUTH[@]}" -X POST "$PB/api/collections/provisioners/records" \
  -d "{\"email\":\"$PROV_EMAIL\",\"password\":\"$PROV_PASS\",\"passwordConfirm\":\"$PROV_PASS\"}" >/dev/null
json "${AUTH[@]}" -X PATCH "$PB/api/settings" -d @- >/dev/null <<JSON
{"rateLimits":{"enabled":true,"rules":[
  {"label":"people:create","maxRequests":20,"duration":1},
  {"label":"/api/","maxRequests":300,"duration":10}]}}
JSON
echo "pocketbase ready at $PB (provisioner $PROV_EMAIL)"
