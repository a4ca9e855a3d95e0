"""One run driven through the Python client that openapi-python-client generates from
openapi/openapi.json (imported as `jobcenter_client`): log in as the admin, create a
project and a command job, trigger a run with an input, wait for it to finish.

Exits 0 only if the run succeeded with the input echoed as its result.
Environment: JOBCENTER_URL, JOBCENTER_USERNAME, JOBCENTER_PASSWORD.
"""

import os
import sys
import time
import uuid

from jobcenter_client import AuthenticatedClient, Client
from jobcenter_client.api.auth import login
from jobcenter_client.api.jobs import create_job
from jobcenter_client.api.projects import create_project
from jobcenter_client.api.runs import get_run, trigger_run
from jobcenter_client.models import (
    CommandTarget,
    CommandTargetKind,
    CreateJob,
    CreateProject,
    JobResponse,
    LoginRequest,
    ManualSchedule,
    ManualScheduleKind,
    ProjectResponse,
    RunResponse,
    TokenResponse,
    TriggerRun,
)

FINISHED = {"succeeded", "failed", "timed_out", "cancelled", "skipped"}
WAIT_SECONDS = 120
# Prints hi, and makes the run's input its result.
ECHO_INPUT = 'echo hi; printf %s "$(cat "$JOBCENTER_INPUT_FILE")" > "$JOBCENTER_RESULT_FILE"'


def parsed(response, status, model):
    """The response's parsed body, when it has the expected status and model."""
    if response.status_code != status or not isinstance(response.parsed, model):
        sys.exit(
            f"python: expected {status} {model.__name__}, got "
            f"{int(response.status_code)}: {response.content!r}"
        )
    return response.parsed


def main() -> None:
    base = os.environ["JOBCENTER_URL"]
    credentials = LoginRequest(
        username=os.environ["JOBCENTER_USERNAME"],
        password=os.environ["JOBCENTER_PASSWORD"],
    )
    token = parsed(
        login.sync_detailed(client=Client(base_url=base), body=credentials),
        200,
        TokenResponse,
    )
    print("python: logged in as", credentials.username)
    client = AuthenticatedClient(base_url=base, token=token.access_token)

    project = parsed(
        create_project.sync_detailed(
            client=client, body=CreateProject(name=f"python-{uuid.uuid4().hex[:8]}")
        ),
        201,
        ProjectResponse,
    )
    print("python: created project", project.name, project.id)

    target = CommandTarget(
        command=["sh", "-c", ECHO_INPUT], kind=CommandTargetKind.COMMAND
    )
    body = CreateJob(
        name="echo",
        target=target,
        schedule=ManualSchedule(kind=ManualScheduleKind.MANUAL),
    )
    job = parsed(
        create_job.sync_detailed(project.id, client=client, body=body),
        201,
        JobResponse,
    )
    if not isinstance(job.target, CommandTarget) or job.target.command != target.command:
        sys.exit(f"python: the job's target came back as {job.target!r}")
    print("python: created job", job.name, job.id, "running", job.target.command)

    run = parsed(
        trigger_run.sync_detailed(
            job.id, client=client, body=TriggerRun(input_={"greeting": "hello"})
        ),
        202,
        RunResponse,
    )
    print("python: triggered run", run.id)

    deadline = time.monotonic() + WAIT_SECONDS
    while run.state not in FINISHED:
        if time.monotonic() > deadline:
            sys.exit(f"python: run {run.id} still {run.state} after {WAIT_SECONDS} s")
        time.sleep(0.2)
        run = parsed(get_run.sync_detailed(run.id, client=client), 200, RunResponse)
    print("python: run", run.id, "finished:", run.state, "result:", run.result)

    if run.state != "succeeded" or run.result != '{"greeting":"hello"}':
        sys.exit(f"python: expected a succeeded run echoing its input, got {run!r}")


if __name__ == "__main__":
    main()
