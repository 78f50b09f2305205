"""Deployment files checked without Azure: Bicep parses and passes checkov, the app
settings cover what shared/config.py reads, and the role assignments are least privilege.

Bicep cannot be compiled here, so the templates are read through pycep (the parser checkov
uses) and assertions follow the parsed structure, not the text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pathspec
import pytest
from pycep import BicepParser
from pydantic import AliasChoices

from rlm_activities.batch_models import BATCH_QUEUE
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"

# Settings the code reads that the Bicep leaves unset on purpose; the code's default is the Azure value.
OPTIONAL_IN_AZURE: dict[str, str] = {
    "MODEL_API_KEY": "keyless in Azure: the app gets a bearer token for its managed identity",
    "AZURE_OPENAI_API_VERSION": "the azure provider calls the versionless /openai/v1 API",
    "MODEL_TIMEOUT_SECONDS": "default (300 s) suits hosted models",
    "RLM_MAX_ITERATIONS": "loop bound; default kept, operators tune it per app",
    "RLM_MAX_DEPTH": "loop bound; default kept, operators tune it per app",
    "RLM_SUB_MAX_ITERATIONS": "loop bound; default kept, operators tune it per app",
    "RLM_TRUNCATE_CHARS": "prompt shaping; default kept",
    "RLM_CELL_TIMEOUT_SECONDS": "default 120 s is under the ACA 220 s per-execution cap",
    "RLM_CELL_MEMORY_MB": "applies to the local sandbox; ACA sessions have fixed sizes",
    "RLM_CELL_OUTPUT_MAX_CHARS": "default kept",
    "SESSION_POOL_API_VERSION": "the client pins the API version it was written against",
    "RLM_STORAGE_CONNECTION_STRING": "keyless in Azure: RLM_STORAGE_ACCOUNT_URL + managed identity",
    "RLM_DATA_DIR": "filesystem store only; Azure uses Blob Storage",
    "RLM_BATCH_CONCURRENCY": "default kept, operators tune it per app",
    "RLM_MAX_RUNNING_QUERIES": "default kept; operators raise it with the session pool and model quota",
    "RLM_MAX_PARALLEL_SUBQUERIES": "default kept; the session pool's maxConcurrentSessions is the real cap in Azure",
    "RLM_MAX_LIVE_SANDBOXES": "per worker process; the session pool's maxConcurrentSessions bounds the whole app in Azure",
    "RLM_SANDBOX_MAX_PROCESSES": "applies to the local sandbox; ACA sessions are containers of their own",
    "RLM_SANDBOX_MAX_FILE_MB": "applies to the local sandbox; ACA sessions are containers of their own",
    "RLM_SANDBOX_IDLE_SECONDS": "default kept; ACA sessions also end after the pool's cooldown",
    "RLM_SANDBOX_WEAK_ISOLATION": "applies to the local sandbox only; Azure runs cells in ACA sessions",
    "RLM_MAX_TOKENS": "no tree budget unless an operator sets one; queries can set their own",
    "RLM_MAX_COST": "no tree budget unless an operator sets one (it needs RLM_PRICES)",
    "RLM_DEADLINE_SECONDS": "no deadline unless an operator sets one; queries can set their own",
    "RLM_PRICES": "prices depend on the operator's agreement; without them usage is reported without cost",
    "JUDGE_MODEL": "the judge defaults to ROOT_MODEL's deployment",
    "RETRIEVAL_TOP_K": "retrieval tuning; default kept",
    "RETRIEVAL_PASSAGE_CHARS": "retrieval tuning; default kept",
    "AGENTIC_MAX_ROUNDS": "retrieval tuning; default kept",
    "AZURE_SEARCH_ENDPOINT": "optional: without it the baselines search indexes kept in Blob Storage",
    "SEARCH_INDEX_NAME": "only with AZURE_SEARCH_ENDPOINT; default kept",
    "RLM_ALLOWED_MODELS": "none by default: code may name only the deployed ROOT_MODEL and SUB_MODEL",
}

# Settings read by the Functions host, the Python worker or the Copilot SDK rather than shared/config.py.
HOST_SETTINGS: frozenset[str] = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        "TASKHUB_NAME",
        "AZURE_CLIENT_ID",
        "PYTHON_THREADPOOL_THREAD_COUNT",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "COPILOT_SKIP_CLI_DOWNLOAD",
    }
)

# Built-in role definition ids.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
SESSION_EXECUTOR = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"
DURABLE_TASK_DATA_READER = "d6a5505f-6ebb-45a4-896e-ac8274cfc0ac"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    """pycep JSON of one Bicep file; raises on a syntax error."""
    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


def body(block: dict[str, Any]) -> dict[str, Any]:
    """The config of a resource or module, looking through an `if (...)` condition."""
    config = block["config"]
    return config["config"] if "condition" in config and "config" in config else config


def dotted(expr: Any) -> str:
    """`a.b.c` for a pycep property-accessor chain, the identifier itself for a plain name."""
    if isinstance(expr, str):
        return expr
    operands = expr["operator"]["operands"]
    assert expr["operator"]["type"] == "property_accessor", expr
    return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"


def setting_names(field_name: str) -> set[str]:
    """Every environment name pydantic accepts for one Settings field."""
    field = Settings.model_fields[field_name]
    names = {field.alias} if field.alias else set()
    if isinstance(field.validation_alias, AliasChoices):
        names |= {c for c in field.validation_alias.choices if isinstance(c, str)}
    elif isinstance(field.validation_alias, str):
        names.add(field.validation_alias)
    return names or {field_name}


def config_setting_names() -> set[str]:
    return set().union(*(setting_names(name) for name in Settings.model_fields))


def bicep_app_settings() -> dict[str, Any]:
    """App settings of the function app, taken from the object its siteConfig loops over."""
    template = parse(MODULES / "functionapp.bicep")
    loop = body(template["resources"]["app"])["properties"]["siteConfig"]["appSettings"]
    assert loop["loop_type"]["type"] == "object", "appSettings is expected to loop over an object"
    source = loop["loop_type"]["detail"]["object_name"]
    item = loop["loop_type"]["detail"]["item_name"]
    assert dotted(loop["config"]["name"]) == f"{item}.key"
    assert dotted(loop["config"]["value"]) == f"{item}.value"
    return template["variables"][source]["value"]


# --- parsing and checkov ------------------------------------------------------------------


def test_expected_bicep_files_exist() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {
        "main.bicep",
        "modules/functionapp.bicep",
        "modules/storage.bicep",
        "modules/monitoring.bicep",
        "modules/sessionpool.bicep",
        "modules/ai.bicep",
        "modules/durabletask.bicep",
        "modules/identity.bicep",
        "modules/rbac.bicep",
        "modules/workbook.bicep",
        "modules/alerts.bicep",
    } <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    template = parse(path)
    assert template.get("resources") or template.get("modules"), f"{path.name} declares nothing"


def test_main_modules_point_at_files() -> None:
    for name, module in parse(INFRA / "main.bicep")["modules"].items():
        assert (INFRA / module["detail"]["path"]).is_file(), f"module {name} -> missing file"


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """One checkov run over infra/ (Bicep framework, no network)."""
    checkov = Path(sys.executable).with_name("checkov")
    proc = subprocess.run(
        [str(checkov), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (rc={proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (bicep,) = [r for r in reports if r["check_type"] == "bicep"]
    return bicep


def test_checkov_finds_no_failed_checks(checkov_report: dict[str, Any]) -> None:
    results = checkov_report["results"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in results["failed_checks"]]
    assert failed == []
    assert results["parsing_errors"] == []
    assert checkov_report["summary"]["resource_count"] > 0
    assert len(results["passed_checks"]) > 0


def test_checkov_skips_carry_a_reason(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']} is skipped without a reason"


# --- settings ---------------------------------------------------------------------------


def test_every_setting_the_code_reads_is_set_or_documented_optional() -> None:
    settings = set(bicep_app_settings())
    missing = [
        name
        for name in Settings.model_fields
        if not setting_names(name) & settings and not setting_names(name) & set(OPTIONAL_IN_AZURE)
    ]
    assert missing == []


def test_optional_list_is_accurate() -> None:
    known = config_setting_names()
    assert set(OPTIONAL_IN_AZURE) <= known, "optional list names a setting the code does not read"
    assert not set(OPTIONAL_IN_AZURE) & set(bicep_app_settings()), "a setting is both set and listed optional"


def test_bicep_app_settings_are_all_read_by_someone() -> None:
    unknown = set(bicep_app_settings()) - config_setting_names() - HOST_SETTINGS
    assert unknown == set()


def test_azure_values_are_keyless_and_wired() -> None:
    settings = bicep_app_settings()
    assert settings["MODEL_PROVIDER"] == "azure"
    assert "MODEL_API_KEY" not in settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in settings, "a connection string would need shared keys"
    assert settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"] == (
        "Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}"
    )
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["RLM_STORAGE_ACCOUNT_URL"] == "blobEndpoint"
    assert settings["COPILOT_SKIP_CLI_DOWNLOAD"] == "1"


def test_main_wires_module_outputs_into_app_settings() -> None:
    params = body(parse(INFRA / "main.bicep")["modules"]["functionApp"])["params"]
    assert dotted(params["sessionPoolEndpoint"]) == "sessionPool.outputs.poolManagementEndpoint"
    assert dotted(params["modelEndpoint"]) == "ai.outputs.endpoint"
    assert dotted(params["embeddingModelDeployment"]) == "ai.outputs.embeddingDeployment"
    assert dotted(params["schedulerEndpoint"]) == "durableTask.outputs.endpoint"
    assert dotted(params["blobEndpoint"]) == "storage.outputs.blobEndpoint"
    assert dotted(params["identityClientId"]) == "identity.outputs.clientId"
    assert dotted(params["identityId"]) == "identity.outputs.id"


def test_local_settings_example_keys_are_real_settings() -> None:
    values = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    unknown = set(values) - config_setting_names() - HOST_SETTINGS
    assert unknown == set()
    ours = {k: v for k, v in values.items() if k in config_setting_names()}
    settings = Settings.model_validate(ours)
    assert settings.model_provider == "openai"
    assert settings.model_base_url == "http://localhost:11434/v1"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"


# --- host.json, storage names, packaging ------------------------------------------------


def test_host_json_uses_durable_task_scheduler() -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["version"] == "2.0"
    durable = host["extensions"]["durableTask"]
    assert durable["storageProvider"]["type"] == "azureManaged"
    connection = durable["storageProvider"]["connectionStringName"]
    hub = re.fullmatch(r"%(\w+)%", durable["hubName"])
    assert hub, "hubName should come from an app setting"
    settings = bicep_app_settings()
    assert connection in settings and hub.group(1) in settings
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] >= 1 and queues["batchSize"] >= 1


def test_storage_creates_what_the_app_uses() -> None:
    storage = parse(MODULES / "storage.bicep")
    account = body(storage["resources"]["account"])["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    containers = storage["variables"]["appContainers"]["value"]
    defaults = Settings.model_validate({})
    assert set(containers) == {
        defaults.corpora_container,
        defaults.traces_container,
        defaults.payloads_container,
        defaults.results_container,
    }
    assert storage["variables"]["batchQueueName"]["value"] == BATCH_QUEUE


def test_session_pool_is_python_with_egress_disabled() -> None:
    pool = body(parse(MODULES / "sessionpool.bicep")["resources"]["pool"])["properties"]
    assert pool["containerType"] == "PythonLTS"
    assert pool["poolManagementType"] == "Dynamic"
    assert pool["sessionNetworkConfiguration"]["status"] == "EgressDisabled"
    assert pool["dynamicPoolConfiguration"]["lifecycleConfiguration"]["cooldownPeriodInSeconds"]
    assert pool["scaleConfiguration"]["maxConcurrentSessions"]


def test_ai_account_disables_local_auth() -> None:
    account = body(parse(MODULES / "ai.bicep")["resources"]["account"])["properties"]
    assert account["disableLocalAuth"] is True


def test_ai_account_deploys_the_embedding_model_after_the_chat_models() -> None:
    template = parse(MODULES / "ai.bicep")
    embedding = body(template["resources"]["embeddingDeployment"])
    assert dotted(embedding["name"]) == "embeddingModelDeployment"
    assert dotted(embedding["properties"]["model"]["name"]) == "embeddingModelName"
    assert embedding["properties"]["model"]["format"] == "OpenAI"
    assert set(embedding["dependsOn"]) == {"rootDeployment", "subDeployment"}  # one deployment at a time per account
    assert bicep_app_settings()["EMBEDDING_MODEL"] == "embeddingModelDeployment"
    defaults = {name: p.get("default") for name, p in parse(INFRA / "main.bicep")["parameters"].items()}
    assert defaults["embeddingModelName"] == "text-embedding-3-small" and defaults["embeddingModelVersion"] == "1"


def test_copilot_cli_path_matches_the_packaging_hook() -> None:
    azure = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    hook = re.search(r"prepackage:.*?run:\s*(\S+)", azure, re.S)
    assert hook, "azure.yaml has no prepackage hook"
    script = ROOT / hook.group(1)
    assert script.is_file() and script.stat().st_mode & 0o111
    target = re.search(r'^target="([^"]+)"', script.read_text(encoding="utf-8"), re.M)
    assert target, "hook does not name its target"
    cli_path = bicep_app_settings()["COPILOT_CLI_PATH"]
    package_root = parse(MODULES / "functionapp.bicep")["variables"]["packageRoot"]["value"]
    assert cli_path.replace("${packageRoot}", package_root) == f"/home/site/wwwroot/{target.group(1)}"
    assert not packaging_ignores().match_file(target.group(1)), ".funcignore drops the CLI"


def packaging_ignores() -> pathspec.GitIgnoreSpec:
    """What azd leaves out of the app package: .funcignore, read with gitignore rules as azd does."""
    return pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text(encoding="utf-8").splitlines())


def test_the_package_ships_the_built_web_ui_and_not_its_source() -> None:
    ignored = packaging_ignores()
    assert not ignored.match_file("ui/dist/index.html") and not ignored.match_file("ui/dist/assets/index-0a1b2c.js")
    assert all(ignored.match_file(p) for p in ("ui/src/main.tsx", "ui/package.json", "ui/node_modules/preact/package.json"))
    hook = (ROOT / "infra" / "hooks" / "prepackage.sh").read_text(encoding="utf-8")
    assert "npm --prefix ui ci" in hook and "npm --prefix ui run build" in hook, "the prepackage hook does not build the web UI"


# --- role assignments -------------------------------------------------------------------


def role_assignments() -> list[dict[str, str]]:
    """Every role assignment in infra/: role GUID, principal parameter, scope resource type."""
    found = []
    for path in BICEP_FILES:
        template = parse(path)
        variables = {k: v["value"] for k, v in template.get("variables", {}).items()}
        resources = template.get("resources", {})
        for name, resource in resources.items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            config = body(resource)
            role = config["properties"]["roleDefinitionId"]["function"]
            assert role["type"] == "subscription_resource_id", f"{name}: unexpected roleDefinitionId form"
            guid = variables.get(role["parameters"]["resource_name_1"], role["parameters"]["resource_name_1"])
            assert GUID.match(guid), f"{name}: role {guid!r} does not resolve to a GUID"
            found.append(
                {
                    "name": name,
                    "file": path.name,
                    "role": guid,
                    "principal": config["properties"]["principalId"],
                    "principalType": config["properties"]["principalType"],
                    "scope": resources[config["scope"]]["type"],
                }
            )
    return found


def test_role_assignments_grant_what_the_app_needs() -> None:
    main = body(parse(INFRA / "main.bicep")["modules"]["rbac"])["params"]
    assert dotted(main["appPrincipalId"]) == "identity.outputs.principalId"
    assert main["userPrincipalId"] == "principalId"
    granted = {(a["principal"], a["role"], a["scope"]) for a in role_assignments()}
    app = "appPrincipalId"
    expected = {
        (app, BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts"),
        (app, QUEUE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
        (app, TABLE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
        (app, SESSION_EXECUTOR, "Microsoft.App/sessionPools"),
        (app, OPENAI_USER, "Microsoft.CognitiveServices/accounts"),
        (app, DURABLE_TASK_DATA_CONTRIBUTOR, "Microsoft.DurableTask/schedulers/taskHubs"),
        (app, MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components"),
        ("userPrincipalId", DURABLE_TASK_DATA_READER, "Microsoft.DurableTask/schedulers/taskHubs"),
    }
    assert granted == expected


def test_no_identity_gets_owner_contributor_or_access_admin() -> None:
    assignments = role_assignments()
    assert assignments, "no role assignments parsed"
    broad = {OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR}
    assert [a["name"] for a in assignments if a["role"] in broad] == []
    for a in assignments:
        expected_type = "User" if a["principal"] == "userPrincipalId" else "ServicePrincipal"
        assert a["principalType"] == expected_type, a["name"]


# --- monitoring: OpenTelemetry settings, the workbook, the alerts --------------------------

WORKBOOK_TILES = {"queries-per-hour", "duration", "failure-rate", "tokens-cost", "fan-out", "slowest"}
ROOT_QUERIES = 'requests\n| where name == "invoke_agent rlm" and tostring(customDimensions["rlm.depth"]) == "0"\n'


def workbook_json() -> dict[str, Any]:
    return json.loads((MODULES / "workbook.json").read_text(encoding="utf-8"))


def test_the_worker_streams_opentelemetry_to_application_insights() -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    settings = bicep_app_settings()
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert (settings["OTEL_TRACES_SAMPLER"], settings["OTEL_TRACES_SAMPLER_ARG"]) == ("microsoft.fixed_percentage", "1.0")
    assert dotted(body(parse(INFRA / "main.bicep")["modules"]["functionApp"])["params"]["appInsightsConnectionString"]) == (
        "monitoring.outputs.connectionString"
    )
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "azure-monitor-opentelemetry" in requirements and "opentelemetry-exporter-otlp-proto-http" in requirements


def test_the_workbook_has_every_tile_over_application_insights() -> None:
    workbook = body(parse(MODULES / "workbook.bicep")["resources"]["workbook"])
    data = workbook["properties"]["serializedData"]["function"]
    assert (
        data["type"] == "replace"
        and data["parameters"]["original_string"]["function"]["parameters"]["file_path"] == "workbook.json"
    )
    assert data["parameters"]["old_string"] == "__APP_INSIGHTS_ID__"
    assert dotted(data["parameters"]["new_string"]) == "appInsights.id"
    assert dotted(workbook["properties"]["sourceId"]) == "appInsights.id" and workbook["kind"] == "shared"
    items = {item["name"]: item for item in workbook_json()["items"]}
    tiles = {name for name, item in items.items() if item["type"] == 3}
    assert tiles == WORKBOOK_TILES
    for name in tiles:
        content = items[name]["content"]
        assert content["resourceType"] == "microsoft.insights/components"
        assert content["crossComponentResources"] == ["{Component}"] and content["timeContextFromParameter"] == "TimeRange"
    parameters = {p["name"]: p for p in items["parameters"]["content"]["parameters"]}
    assert parameters["Component"]["value"] == "__APP_INSIGHTS_ID__"
    link = items["slowest"]["content"]["gridSettings"]["formatters"][0]
    assert link["columnMatch"] == "transaction" and link["formatOptions"]["linkTarget"] == "Url"
    assert "DetailsV2Blade" in items["slowest"]["content"]["query"]
    main = body(parse(INFRA / "main.bicep")["modules"]["workbook"])["params"]
    assert dotted(main["appInsightsName"]) == "monitoring.outputs.appInsightsName"


def test_docs_show_the_kql_of_every_tile_and_alert() -> None:
    docs = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    for item in workbook_json()["items"]:
        if item["type"] == 3:
            assert item["content"]["query"] in docs, f"tile {item['name']}: its KQL is not in docs/monitoring.md"
    for rule in ("failureRate", "p95Latency"):
        query = body(parse(MODULES / "alerts.bicep")["resources"][rule])["properties"]["criteria"]["allOf"][0]["query"]
        assert query.replace("${rootQueries}", ROOT_QUERIES).replace("\\n", "\n") in docs, f"alert {rule}"


def test_alerts_on_failure_rate_and_p95_latency_email_the_azd_parameter() -> None:
    alerts = parse(MODULES / "alerts.bicep")
    assert alerts["variables"]["rootQueries"]["value"].replace("\\n", "\n") == ROOT_QUERIES
    group = alerts["resources"]["actionGroup"]
    assert group["type"] == "Microsoft.Insights/actionGroups"
    assert body(group)["properties"]["emailReceivers"][0]["emailAddress"] == "alertEmail"
    measured = {}
    for name in ("failureRate", "p95Latency"):
        rule = alerts["resources"][name]
        assert rule["type"] == "Microsoft.Insights/scheduledQueryRules"
        properties = body(rule)["properties"]
        assert [dotted(s) for s in properties["scopes"]] == ["appInsights.id"]
        assert properties["actions"] == "actions" and properties["enabled"] is True
        criterion = properties["criteria"]["allOf"][0]
        assert criterion["query"].startswith("${rootQueries}") and criterion["operator"] == "GreaterThan"
        measured[criterion["metricMeasureColumn"]] = criterion["threshold"]
    assert measured == {"failure_rate": "failureRatePercent", "p95_seconds": "p95LatencySeconds"}
    groups = alerts["variables"]["actions"]["value"]["actionGroups"]["operator"]["operands"]
    assert [dotted(g) for g in groups["false_value"]] == ["actionGroup.id"]
    main = body(parse(INFRA / "main.bicep")["modules"]["alerts"])["params"]
    assert main["alertEmail"] == "alertEmail" and dotted(main["appInsightsName"]) == "monitoring.outputs.appInsightsName"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL=}"
