// One run driven through openapi-fetch with the types openapi-typescript generates from
// openapi/openapi.json (./schema.d.ts, written beside this file by the test): log in as
// the admin, create a project and a command job, trigger a run with an input, wait for
// it to finish. Exits 0 only if the run succeeded with the input echoed as its result.
// Environment: JOBCENTER_URL, JOBCENTER_USERNAME, JOBCENTER_PASSWORD.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Run = components["schemas"]["RunResponse"];

const FINISHED = ["succeeded", "failed", "timed_out", "cancelled", "skipped"];
const WAIT_MS = 120_000;
// Prints hi, and makes the run's input its result.
const ECHO_INPUT = 'echo hi; printf %s "$(cat "$JOBCENTER_INPUT_FILE")" > "$JOBCENTER_RESULT_FILE"';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

/** The body of a successful response; anything else ends the driver. */
function expect<T>(what: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) {
    throw new Error(`${what}: ${result.response.status} ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

async function main(): Promise<void> {
  const baseUrl = env("JOBCENTER_URL");
  const username = env("JOBCENTER_USERNAME");
  const login = await createClient<paths>({ baseUrl }).POST("/api/v1/auth/login", {
    body: { username, password: env("JOBCENTER_PASSWORD") },
  });
  const token = expect("login", login).access_token;
  console.log(`typescript: logged in as ${username}`);
  const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

  const project = expect(
    "create project",
    await client.POST("/api/v1/projects", {
      body: { name: `typescript-${crypto.randomUUID().slice(0, 8)}` },
    }),
  );
  console.log(`typescript: created project ${project.name} ${project.id}`);

  const target: components["schemas"]["CommandTarget"] = {
    kind: "command",
    command: ["sh", "-c", ECHO_INPUT],
  };
  const job = expect(
    "create job",
    await client.POST("/api/v1/projects/{id}/jobs", {
      params: { path: { id: project.id } },
      body: { name: "echo", target, schedule: { kind: "manual" } },
    }),
  );
  if (job.target.kind !== "command" || job.target.command.join(" ") !== target.command.join(" ")) {
    throw new Error(`the job's target came back as ${JSON.stringify(job.target)}`);
  }
  console.log(`typescript: created job ${job.name} ${job.id} running ${JSON.stringify(job.target.command)}`);

  let run: Run = expect(
    "trigger run",
    await client.POST("/api/v1/jobs/{id}/runs", {
      params: { path: { id: job.id } },
      body: { input: { greeting: "hello" } },
    }),
  );
  console.log(`typescript: triggered run ${run.id}`);

  const deadline = Date.now() + WAIT_MS;
  while (!FINISHED.includes(run.state)) {
    if (Date.now() > deadline) throw new Error(`run ${run.id} still ${run.state} after ${WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    run = expect("get run", await client.GET("/api/v1/runs/{id}", { params: { path: { id: run.id } } }));
  }
  console.log(`typescript: run ${run.id} finished: ${run.state} result: ${run.result}`);

  if (run.state !== "succeeded" || run.result !== '{"greeting":"hello"}') {
    throw new Error(`expected a succeeded run echoing its input, got ${JSON.stringify(run)}`);
  }
}

main().catch((error: unknown) => {
  console.error(`typescript: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
