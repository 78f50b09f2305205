"""HTTP triggers of each auth level, for the server's own behaviour: routing, keys,
limits and errors."""
import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{id}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"id": req.route_params["id"]}), mimetype="application/json")


@app.route(route="open/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"path": req.route_params.get("path", "")}), mimetype="application/json")


@app.route(route="upload", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def upload(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"bytes": len(req.get_body())}), mimetype="application/json")


@app.route(route="admin/reset", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def admin_reset(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("reset")


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the function broke")
