"""Start-request parsing (streams.config): every accepted shape and every 400 with its message."""

from __future__ import annotations

import json

import pytest
from comfy_trickle.streams.config import StreamConfig, parse_start_request
from comfy_trickle.streams.errors import ApiError

PASSTHROUGH = {
    "1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
    "2": {"inputs": {}, "class_type": "LoadTensor"},
}


def body(**overrides):
    base = {
        "subscribe_url": "http://127.0.0.1:8188/trickle/relay/in",
        "publish_url": "http://127.0.0.1:8188/trickle/relay/out",
        "gateway_request_id": "s1",
        "params": {"width": 512, "height": 256, "prompt": json.dumps(PASSTHROUGH)},
    }
    base.update(overrides)
    return base


def params(**overrides):
    return {"width": 512, "height": 256, "prompt": PASSTHROUGH, **overrides}


def rejected(request_body) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_start_request(request_body)
    assert info.value.http_status == 400
    return info.value


def test_seed_body_with_prompt_as_json_string():
    config = parse_start_request(body())
    assert isinstance(config, StreamConfig)
    assert config.stream_id == "s1"
    assert config.subscribe_url.endswith("/in")
    assert config.publish_url.endswith("/out")
    assert (config.width, config.height) == (512, 256)
    assert config.workflow == PASSTHROUGH


def test_prompt_as_object_and_ai_runner_fields_are_stored():
    config = parse_start_request(
        body(
            params=params(show_reloading_frame=True),
            control_url="http://127.0.0.1:1/c",
            events_url="http://127.0.0.1:1/e",
            manifest_id="m-1",
            stream_id="runner-7",
            model_id="comfyui",
        )
    )
    assert config.workflow == PASSTHROUGH
    assert config.control_url == "http://127.0.0.1:1/c"
    assert config.events_url == "http://127.0.0.1:1/e"
    assert config.manifest_id == "m-1"
    assert config.runner_stream_id == "runner-7"
    assert config.params == {"show_reloading_frame": True}
    assert set(config.trickle_urls()) == {"subscribe_url", "publish_url", "control_url", "events_url"}
    as_json = config.to_json()
    assert as_json["runner_stream_id"] == "runner-7"
    assert "workflow" not in as_json and as_json["workflow_nodes"] == 2
    json.dumps(config.to_json(include_workflow=True))


def test_request_id_is_accepted_as_the_stream_id():
    request = body(request_id="from-runner")
    del request["gateway_request_id"]
    assert parse_start_request(request).stream_id == "from-runner"


def test_width_and_height_default_to_512():
    config = parse_start_request(body(params={"prompt": PASSTHROUGH}))
    assert (config.width, config.height) == (512, 512)


@pytest.mark.parametrize("missing", ["subscribe_url", "publish_url", "gateway_request_id"])
def test_missing_required_field_is_named(missing):
    request = body()
    del request[missing]
    err = rejected(request)
    assert err.message == f"Missing required field: {missing}"
    assert err.body() == {"error": f"Missing required field: {missing}", "field": missing}


def test_missing_prompt_is_named():
    err = rejected(body(params={"width": 512, "height": 512}))
    assert err.message == "Missing required field: params.prompt"


def test_bad_prompt_json_says_where():
    err = rejected(body(params=params(prompt='{"1": {"class_type": "SaveTensor",}')))
    assert err.message.startswith("Invalid prompt JSON in params.prompt: ")
    assert "line 1 column" in err.message


@pytest.mark.parametrize("prompt", ["[1, 2]", [1, 2], 42, '"text"', True])
def test_prompt_that_is_not_an_object(prompt):
    err = rejected(body(params=params(prompt=prompt)))
    assert "must be a workflow object" in err.message


def test_ui_format_workflow_is_explained():
    err = rejected(body(params=params(prompt={"nodes": [], "links": [], "version": 0.4})))
    assert "UI-format" in err.message and "Export (API)" in err.message


def test_malformed_nodes_come_back_as_node_errors():
    prompt = {"1": {"inputs": {}}, "2": "LoadTensor", "3": {"class_type": "SaveTensor", "inputs": []}}
    err = rejected(body(params=params(prompt=prompt)))
    node_errors = err.details["node_errors"]
    assert set(node_errors) == {"1", "2", "3"}
    assert node_errors["1"]["errors"][0]["message"] == "node has no class_type"
    assert node_errors["3"]["class_type"] == "SaveTensor"
    assert node_errors["3"]["errors"][0]["message"] == "node has no inputs object"


def test_malformed_nodes_body_has_the_field_and_comfyui_shaped_entries():
    err = rejected(body(params=params(prompt={"7": {"inputs": {}}})))
    assert err.body() == {
        "error": "Workflow in params.prompt has malformed nodes",
        "field": "params.prompt",
        "node_errors": {
            "7": {
                "class_type": None,
                "errors": [
                    {
                        "type": "invalid_node",
                        "message": "node has no class_type",
                        "details": "Node ID '#7'",
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": [],
            }
        },
    }


@pytest.mark.parametrize("value", [0.05, 1, 2.5, 120])
def test_max_backlog_in_range_is_kept(value):
    config = parse_start_request(body(params=params(max_backlog_s=value)))
    assert config.max_backlog_s == value
    assert "max_backlog_s" not in config.params  # one home: the typed field


def test_max_backlog_absent_is_none():
    assert parse_start_request(body()).max_backlog_s is None


@pytest.mark.parametrize("value", [0.01, 121, -1, True, "1", None, float("nan")])
def test_max_backlog_out_of_range_or_not_a_number(value):
    err = rejected(body(params=params(max_backlog_s=value)))
    assert err.details == {"field": "params.max_backlog_s"}
    assert err.message == f"params.max_backlog_s must be seconds in 0.05..120, got {value!r}"


@pytest.mark.parametrize(("value", "kept"), [(None, 300.0), (1, 1.0), (42.5, 42.5), (3600, 3600.0)])
def test_first_frame_timeout_defaults_to_300_s_and_keeps_a_value_in_range(value, kept):
    given = {} if value is None else {"first_frame_timeout_s": value}
    assert parse_start_request(body(params=params(**given))).first_frame_timeout_s == kept


@pytest.mark.parametrize("value", [0.5, 3601, -1, True, "10", None, float("inf")])
def test_first_frame_timeout_out_of_range_or_not_a_number(value):
    err = rejected(body(params=params(first_frame_timeout_s=value)))
    assert err.details == {"field": "params.first_frame_timeout_s"}
    assert err.message == f"params.first_frame_timeout_s must be seconds in 1..3600, got {value!r}"


@pytest.mark.parametrize(
    ("given", "kept"),
    [({}, 0.1), ({"max_lateness_s": 0.25}, 0.25), ({"max_backlog_s": 60}, 60.0),
     ({"max_backlog_s": 60, "max_lateness_s": 0.05}, 0.05)],
)
def test_max_lateness_defaults_to_a_tenth_of_a_second_or_to_a_backlog_asked_for(given, kept):
    assert parse_start_request(body(params=params(**given))).max_lateness_s == kept


@pytest.mark.parametrize("value", [0.001, 121, -1, True, "0.1", None, float("nan")])
def test_max_lateness_out_of_range_or_not_a_number(value):
    err = rejected(body(params=params(max_lateness_s=value)))
    assert err.details == {"field": "params.max_lateness_s"}
    assert err.message == f"params.max_lateness_s must be seconds in 0.01..120, got {value!r}"


@pytest.mark.parametrize("name", ["max_backlog_s", "first_frame_timeout_s", "max_lateness_s", "input_wait_s"])
def test_a_seconds_param_with_hundreds_of_digits_is_a_400_not_a_crash(name):
    err = rejected(body(params=params(**{name: 10**400})))
    assert err.details == {"field": f"params.{name}"} and err.message.endswith("...")


@pytest.mark.parametrize(
    ("name", "value"),
    [("width", 32), ("width", 4096), ("height", 63), ("height", 2056), ("width", 100), ("height", 0)],
)
def test_dimension_out_of_range_or_not_multiple_of_8(name, value):
    err = rejected(body(params=params(**{name: value})))
    assert err.details == {"field": f"params.{name}"}
    assert f"got {value}" in err.message
    assert "between 64 and 2048" in err.message


@pytest.mark.parametrize("value", ["512", 512.5, True, None, float("nan"), float("inf")])
def test_dimension_must_be_an_integer(value):
    if value is None:  # None means "not given": the default applies
        assert parse_start_request(body(params=params(width=value))).width == 512
        return
    err = rejected(body(params=params(width=value)))
    assert err.message.startswith("Field params.width must be an integer")


def test_dimension_edges_are_accepted():
    config = parse_start_request(body(params=params(width=64, height=2048)))
    assert (config.width, config.height) == (64, 2048)
    assert parse_start_request(body(params=params(width=512.0))).width == 512


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "127.0.0.1:8000/x", "http:///nohost", "http://127.0.0.1:99999/x", 5]
)
def test_bad_urls(url):
    err = rejected(body(subscribe_url=url))
    assert err.details == {"field": "subscribe_url"}


@pytest.mark.parametrize("stream_id", ["has space", "../etc", "a/b", "x" * 129, 7])
def test_bad_stream_ids(stream_id):
    err = rejected(body(gateway_request_id=stream_id))
    assert err.details == {"field": "gateway_request_id"}


@pytest.mark.parametrize("request_body", [[], "text", None, 3])
def test_body_must_be_an_object(request_body):
    assert rejected(request_body).message.startswith("Request body must be a JSON object")


def test_params_must_be_an_object():
    assert rejected(body(params="x")).details == {"field": "params"}


def test_node_error_builds_comfyui_entries_and_merge_keeps_every_error():
    from comfy_trickle.streams.errors import merge_node_errors, node_error

    first = node_error(
        "4", "ImageBlend", "value_not_in_list", "Value not in list", "blend_mode: 'x'", "blend_mode",
        extra_info={"input_config": ["COMBO", {"options": ["normal"]}], "received_value": "x"},
        dependent_outputs=["9"],
    )
    second = node_error(
        "4", "ImageBlend", "required_input_missing", "Required input is missing", "", "image2",
        dependent_outputs=["9"],
    )
    merged = merge_node_errors(first, second, node_error("5", "X", "invalid_node", "bad"))
    assert merged["4"]["class_type"] == "ImageBlend"
    assert merged["4"]["dependent_outputs"] == ["9"]
    assert [e["type"] for e in merged["4"]["errors"]] == ["value_not_in_list", "required_input_missing"]
    assert merged["4"]["errors"][0]["extra_info"] == {
        "input_name": "blend_mode",
        "input_config": ["COMBO", {"options": ["normal"]}],
        "received_value": "x",
    }
    assert merged["5"]["errors"][0]["extra_info"] == {}


def test_a_workflow_over_the_node_limit_is_refused_naming_the_limit():
    from comfy_trickle.streams.limits import StreamLimits

    workflow = {str(i): {"class_type": "ImageInvert", "inputs": {}} for i in range(11)}
    body = {
        "subscribe_url": "http://127.0.0.1:9/in",
        "publish_url": "http://127.0.0.1:9/out",
        "gateway_request_id": "big",
        "params": {"prompt": workflow},
    }
    with pytest.raises(ApiError) as info:
        parse_start_request(body, StreamLimits(max_workflow_nodes=10))
    assert info.value.http_status == 400
    assert "11 nodes, over the limit of 10 (max_workflow_nodes" in info.value.message
    assert info.value.details["limit"] == "max_workflow_nodes"
    at_limit = {**body, "params": {"prompt": dict(list(workflow.items())[:10])}}
    assert len(parse_start_request(at_limit, StreamLimits(max_workflow_nodes=10)).workflow) == 10
