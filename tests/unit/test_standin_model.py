"""The AWS stand-in's validation against botocore's models (tests/standins/servicemodel.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.serialize import create_serializer

from tests.standins.servicemodel import Call, Catalog, java_regex

TAG_VALUE = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
ROLE = "arn:aws:iam::123456789012:role/deploy"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def raw(catalog: Catalog, service: str, operation: str, params: dict[str, Any], signed: bool = True) -> Call:
    """``params`` as botocore puts them on the wire, parsed back by the stand-in."""
    model = catalog.models[service]
    request = create_serializer(model.protocol, include_validation=False).serialize_to_request(
        params, model.operation_model(operation)
    )
    headers = {k.lower(): v for k, v in request["headers"].items()}
    if signed:
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/eu-west-1/{model.signing_name}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        )
    body = request["body"]
    if isinstance(body, dict):
        body = urlencode(body).encode()
    query = request["query_string"]
    path = request["url_path"] + (f"?{urlencode(query, doseq=True)}" if query else "")
    call = catalog.parse(request["method"], path, headers, body)
    assert call is not None
    assert call.operation.name == operation
    return call


def refusal(catalog: Catalog, service: str, operation: str, params: dict[str, Any]) -> tuple[str, str] | None:
    answer = catalog.check(raw(catalog, service, operation, params))
    return (answer.code, answer.message) if answer else None


# -- Java patterns --------------------------------------------------------------------------------
def test_unicode_properties_are_unicode() -> None:
    pattern = java_regex(TAG_VALUE)
    assert pattern.fullmatch("Grüße aus Köln 日本 ١٢٣ a.b:c/d=e+f-g@h_i")
    for refused in ['{"a": 1}', "a,b", 'say "x"', "tab\there", "semi;colon"]:
        assert not pattern.fullmatch(refused), refused


def test_java_class_escapes_are_ascii() -> None:
    session_name = java_regex(r"[\w+=,.@-]*")
    assert session_name.fullmatch("bitbucket-shop_42@ci.x=y,z+")
    for refused in ["café", "١٢", "ｆｕｌｌ", "a b"]:  # Unicode letters and digits are not Java's \w
        assert not session_name.fullmatch(refused), refused
    assert java_regex(r"\d{12}").fullmatch("123456789012")
    assert not java_regex(r"\d{12}").fullmatch("١٢٣٤٥٦٧٨٩٠١٢")


def test_five_and_six_digit_escapes_are_the_supplementary_planes() -> None:
    arn = java_regex(r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+")
    assert arn.fullmatch("arn:aws:iam::123456789012:role/\U0001f600")
    assert not arn.fullmatch("role\ufffe") and not arn.fullmatch("role\x00")


def test_a_dash_after_a_class_escape_is_literal_as_in_java() -> None:
    role = java_regex(r"^arn:aws[a-z0-9-]*:iam::\d{12}:role\/[\w-\/.@+=,]{1,1017}$")
    assert role.fullmatch("arn:aws:iam::123456789012:role/a-b/c.d")
    assert not role.fullmatch("arn:aws:iam::123456789012:role/a b")


def test_negated_escapes_in_a_class() -> None:
    anything = java_regex(r"[\s\S]*\S[\s\S]*")
    assert anything.fullmatch("line one\nline two") and not anything.fullmatch(" \n\t")


def test_every_pattern_of_the_models_compiles(catalog: Catalog) -> None:
    patterns = {
        shape.metadata["pattern"]
        for model in catalog.models.values()
        for shape in (model.shape_for(name) for name in model.shape_names)
        if "pattern" in shape.metadata
    }
    assert len(patterns) > 100
    for pattern in patterns:
        java_regex(pattern)


# -- constraints, in AWS's words -----------------------------------------------------------------
def test_a_tag_value_inside_a_list_is_checked(catalog: Catalog) -> None:
    params = {
        "UserName": "ci",
        "Tags": [{"Key": "ok", "Value": "fine"}, {"Key": "marker", "Value": '{"a":1}'}],
    }
    assert refusal(catalog, "iam", "TagUser", params) == (
        "ValidationError",
        "1 validation error detected: Value '{\"a\":1}' at 'tags.2.member.value' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {TAG_VALUE}",
    )
    tag_safe = [{"Key": "marker", "Value": "started=1 heartbeat=2 key=AKIA0"}]
    assert refusal(catalog, "iam", "TagUser", {"UserName": "ci", "Tags": tag_safe}) is None


def test_lengths_of_values_and_lists(catalog: Catalog) -> None:
    code, message = refusal(
        catalog, "iam", "TagUser", {"UserName": "ci", "Tags": [{"Key": "k", "Value": "v" * 257}]}
    ) or ("", "")
    assert code == "ValidationError"
    assert message.endswith(
        "at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"
    )
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert (
        "at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
        in ((refusal(catalog, "iam", "TagUser", {"UserName": "ci", "Tags": tags}) or ("", ""))[1])
    )


def test_enums_numbers_and_several_errors(catalog: Catalog) -> None:
    assert refusal(
        catalog, "iam", "UpdateAccessKey", {"AccessKeyId": "AKIAEXAMPLE00000", "Status": "Off"}
    ) == (
        "ValidationError",
        "1 validation error detected: Value 'Off' at 'status' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Active, Inactive, Expired]",
    )
    params = {"RoleArn": ROLE, "RoleSessionName": "é", "DurationSeconds": 100}
    code, message = refusal(catalog, "sts", "AssumeRole", params) or ("", "")
    assert code == "ValidationError"
    assert message.startswith("3 validation errors detected: Value 'é' at 'roleSessionName'")
    assert "Member must have length greater than or equal to 2" in message
    assert "Member must satisfy regular expression pattern: [\\w+=,.@-]*" in message
    assert (
        "Value '100' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        in message
    )


def test_a_missing_required_member(catalog: Catalog) -> None:
    assert refusal(catalog, "iam", "TagUser", {"UserName": "ci", "Tags": [{"Key": "k"}]}) == (
        "ValidationError",
        "1 validation error detected: Value null at 'tags.1.member.value' failed to satisfy constraint: "
        "Member must not be null",
    )


def test_sensitive_values_are_never_echoed(catalog: Catalog) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    code, message = refusal(
        catalog,
        "secretsmanager",
        "CreateSecret",
        {"Name": "ci/key", "SecretString": secret * 2000, "ClientRequestToken": "t" * 32},
    ) or ("", "")
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value at 'secretString' failed to satisfy constraint: "
        "Member must have length less than or equal to 65536"
    )
    call = raw(
        catalog,
        "sts",
        "AssumeRoleWithWebIdentity",
        {"RoleArn": ROLE, "RoleSessionName": "s1", "WebIdentityToken": "ab"},
        signed=False,
    )
    answer = catalog.check(call)
    assert (
        answer is not None
        and "Value at 'webIdentityToken'" in answer.message
        and "'ab'" not in answer.message
    )


def test_json_and_rest_json_protocols(catalog: Catalog) -> None:
    assert refusal(catalog, "ssm", "PutParameter", {"Name": "/ci/x", "Value": "v", "Type": "Secret"}) == (
        "ValidationException",
        "1 validation error detected: Value 'Secret' at 'type' failed to satisfy constraint: "
        "Member must satisfy enum value set: [String, StringList, SecureString]",
    )
    call = raw(catalog, "sesv2", "ListContacts", {"ContactListName": "people", "PageSize": 5})
    assert call.service == "sesv2" and call.params == {"ContactListName": "people", "PageSize": 5}
    code, message = refusal(
        catalog,
        "sesv2",
        "PutEmailIdentityDkimSigningAttributes",
        {"EmailIdentity": "a@b.example", "SigningAttributesOrigin": "NONE"},
    ) or ("", "")
    assert code == "BadRequestException" and "at 'signingAttributesOrigin'" in message
    account = raw(
        catalog, "organizations", "CreateAccount", {"Email": "ops@example.com", "AccountName": "ops"}
    )
    assert catalog.check(account) is None


def test_an_unsigned_query_request_is_found_by_its_action(catalog: Catalog) -> None:
    call = raw(
        catalog,
        "sts",
        "AssumeRoleWithWebIdentity",
        {
            "RoleArn": ROLE,
            "RoleSessionName": "s1",
            "WebIdentityToken": "a.b.c",
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        },
        signed=False,
    )
    assert call.params["PolicyArns"] == [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    assert catalog.check(call) is None


# -- rules AWS documents that the models lack -----------------------------------------------------
SSM_RULES = "each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_"


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("/ci/user name", "ValidationException", SSM_RULES),
        ("/ci/user@example", "ValidationException", SSM_RULES),
        ("ci/user", "ValidationException", SSM_RULES),
        ("/ssm-keys/ci", "ValidationException", SSM_RULES),
        (
            "/aws-credentials-pipe/ci",
            "AccessDeniedException",
            "No access to reserved parameter name: aws-credentials-pipe/ci.",
        ),
        ("AWSkeys", "AccessDeniedException", "reserved parameter name"),
        ("/" + "/".join("l" * 16), "HierarchyLevelLimitExceededException", "maximum of 15 levels"),
        ("/ci/" + "n" * 1000, "ValidationException", "Member must have length less than or equal to"),
    ],
)
def test_ssm_parameter_names(catalog: Catalog, name: str, code: str, words: str) -> None:
    answer = refusal(catalog, "ssm", "PutParameter", {"Name": name, "Value": "v", "Type": "SecureString"})
    assert answer is not None and answer[0] == code and words in answer[1], answer


@pytest.mark.parametrize("name", ["/ci/rotation/key_1.2-3", "plain", "/" + "/".join("l" * 15)])
def test_good_ssm_parameter_names(catalog: Catalog, name: str) -> None:
    assert (
        refusal(catalog, "ssm", "PutParameter", {"Name": name, "Value": "v", "Type": "SecureString"}) is None
    )


def test_reserved_ssm_names_cannot_be_deleted_either(catalog: Catalog) -> None:
    answer = refusal(catalog, "ssm", "DeleteParameter", {"Name": "/aws/service/x"})
    assert answer is not None and answer[0] == "AccessDeniedException"


def test_secrets_manager_names(catalog: Catalog) -> None:
    answer = refusal(
        catalog, "secretsmanager", "CreateSecret", {"Name": "ci key", "ClientRequestToken": "t" * 32}
    )
    assert answer is not None and answer[0] == "ValidationException" and "Invalid name" in answer[1]
    assert (
        refusal(
            catalog,
            "secretsmanager",
            "CreateSecret",
            {"Name": "ci/key+1=@.-_", "ClientRequestToken": "t" * 32},
        )
        is None
    )
