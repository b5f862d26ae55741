// A tiny client of the HTTP API, typed by the client generated from the OpenAPI document
// (`make contract` writes .local/contract/api.d.ts with openapi-typescript; openapi-fetch does
// the requests). A change to the API that this code does not follow fails `tsc`; one that the
// stack does not follow fails the run. `make test` runs it against the local stack:
//
//   API_URL=http://127.0.0.1:4566/_aws/execute-api/episodesapi API_TOKEN=$(make -s token) npm run example

import createClient from "openapi-fetch";
import type { components, paths } from "../../.local/contract/api.js";

type Episode = components["schemas"]["Episode"];
type Problem = components["schemas"]["Problem"];

const baseUrl = process.env.API_URL;
const token = process.env.API_TOKEN;
if (!baseUrl || !token) {
  throw new Error("set API_URL and API_TOKEN");
}

const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`example: ${what}`);
  }
}

// Create: 201, the episode, its version as ETag, where it lives.
const created = await api.POST("/episodes", {
  body: { title: "The Pilot", series: "Night Shift", season: 2, number: 4 },
});
check(created.response.status === 201 && created.data !== undefined, `create: ${created.response.status}`);
const episode: Episode = created.data;
check(episode.status === "draft" && episode.version === 1, "a new episode is a draft at version 1");
check(created.response.headers.get("Location") === `/episodes/${episode.id}`, "Location");
const etag = created.response.headers.get("ETag");
check(etag === '"1"', `ETag ${etag}`);

// Move it on with the version it was read at.
const moved = await api.PATCH("/episodes/{id}", {
  params: { path: { id: episode.id }, header: { "If-Match": etag } },
  body: { status: "in_production" },
});
check(moved.response.status === 204, `patch: ${moved.response.status}`);
check(moved.response.headers.get("ETag") === '"2"', "the new version");

// The same edit again, from the stale version: 412, a problem.
const stale = await api.PATCH("/episodes/{id}", {
  params: { path: { id: episode.id }, header: { "If-Match": etag } },
  body: { title: "Too late" },
});
// An error is a problem, or what API Gateway says itself ({ message }) before a function runs.
const refused = stale.error;
check(refused !== undefined && "type" in refused, "a stale edit is answered with a problem");
const problem: Problem = refused;
check(stale.response.status === 412 && problem.type === "/problems/precondition-failed", "a stale edit is 412");

// Read it back, and find it in the list by its status.
const read = await api.GET("/episodes/{id}", { params: { path: { id: episode.id } } });
check(read.data?.status === "in_production" && read.data.version === 2, "read back");
const listed = await api.GET("/episodes", { params: { query: { status: "in_production", limit: 100 } } });
check(listed.data !== undefined && listed.data.items.every((e) => e.status === "in_production"), "filtered list");

const gone = await api.DELETE("/episodes/{id}", { params: { path: { id: episode.id }, header: { "If-Match": '"2"' } } });
check(gone.response.status === 204, `delete: ${gone.response.status}`);

console.log(JSON.stringify({ ok: true, episode: episode.id, steps: 6 }));
