"""A template of templates/ rendered as CloudFormation would deploy it, for the tests: its
parameters checked and defaulted, its Rules asserted, its Conditions evaluated, and every
intrinsic function its resources and outputs use resolved (Ref, Fn::Sub, Fn::GetAtt, Fn::If,
Fn::Join, Fn::Split, Fn::Select, Fn::FindInMap, AWS::NoValue and the pseudo parameters).

Only what the templates use is known here: anything else raises, so a template that starts
using more makes the tests fail instead of passing on an unresolved value. The YAML is read by
cfn-lint's decoder (short forms such as ``!Sub`` become ``Fn::Sub``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ACCOUNT = "123456789012"
_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out
_SUB = re.compile(r"\$\{(!?)([^}]*)\}")


def load(name: str) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form."""
    return dict(json.loads(json.dumps(cfn_yaml.loads((TEMPLATES / name).read_text()))))


@dataclass
class Stack:
    """``template`` (a file name in templates/) deployed with ``parameters`` as stack ``name``.
    ``physical``: what Ref gives for a resource, when known (a deployed stack's physical ids);
    otherwise names are generated as ``<stack>-<logical id>``."""

    template: str
    parameters: dict[str, str] = field(default_factory=dict)
    name: str = "stack"
    account: str = ACCOUNT
    region: str = "eu-west-1"
    partition: str = "aws"
    physical: dict[str, str] = field(default_factory=dict)

    @cached_property
    def body(self) -> dict[str, Any]:
        return load(self.template)

    @cached_property
    def values(self) -> dict[str, Any]:
        """Every parameter's value (given, else its default), checked as CloudFormation does."""
        declared = self.body.get("Parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise ValueError(f"{self.template} has no parameter {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name not in self.parameters and "Default" not in spec:
                raise ValueError(f"{self.template}: parameter {name} is required")
            value = str(self.parameters.get(name, spec.get("Default")))
            _check(name, spec, value)
            values[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        values.update(
            {
                "AWS::AccountId": self.account,
                "AWS::Region": self.region,
                "AWS::Partition": self.partition,
                "AWS::StackName": self.name,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NoValue": _NO_VALUE,
            }
        )
        return values

    def check_rules(self) -> None:
        """The template's Rules, which CloudFormation asserts before it creates anything."""
        for rule, spec in self.body.get("Rules", {}).items():
            if "RuleCondition" in spec and not self._holds(spec["RuleCondition"]):
                continue
            for assertion in spec["Assertions"]:
                if not self._holds(assertion["Assert"]):
                    raise ValueError(f"{self.template}: rule {rule}: {assertion['AssertDescription']}")

    @cached_property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.body.get("Conditions", {})}

    def condition(self, name: str) -> bool:
        return self._holds(self.body["Conditions"][name])

    @cached_property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Logical id -> {"Type", "Properties"}, resolved; resources whose Condition is false
        are not there."""
        self.check_rules()
        out = {}
        for logical, spec in self.body["Resources"].items():
            if "Condition" in spec and not self.condition(spec["Condition"]):
                continue
            properties = self.resolve(spec.get("Properties", {}))
            out[logical] = {"Type": spec["Type"], "Properties": properties}
        return out

    @cached_property
    def outputs(self) -> dict[str, Any]:
        self.check_rules()
        return {
            name: self.resolve(spec["Value"])
            for name, spec in self.body.get("Outputs", {}).items()
            if "Condition" not in spec or self.condition(spec["Condition"])
        }

    # -- resources ----------------------------------------------------------------------------
    def _properties(self, logical: str) -> dict[str, Any]:
        spec = self.body["Resources"][logical]
        if "Condition" in spec and not self.condition(spec["Condition"]):
            raise ValueError(f"{self.template}: {logical} is referred to, but its condition is false")
        named = ("RoleName", "UserName", "ManagedPolicyName", "PolicyName", "Path", "Url")
        return dict(self.resolve({k: v for k, v in spec.get("Properties", {}).items() if k in named}))

    def physical_id(self, logical: str) -> str:
        """What Ref gives for a resource of the kinds the templates hold."""
        kind = self.body["Resources"][logical]["Type"]
        properties = self._properties(logical)
        if logical in self.physical:
            return self.physical[logical]
        generated = f"{self.name}-{logical}"
        if kind == "AWS::IAM::Role":
            return str(properties.get("RoleName", generated))
        if kind == "AWS::IAM::User":
            return str(properties.get("UserName", generated))
        if kind == "AWS::IAM::Policy":
            return generated
        if kind == "AWS::IAM::ManagedPolicy":
            path = properties.get("Path", "/")
            return f"arn:{self.partition}:iam::{self.account}:policy{path}{properties.get('ManagedPolicyName', generated)}"
        if kind == "AWS::IAM::OIDCProvider":
            host = str(properties["Url"]).split("://", 1)[1]
            return f"arn:{self.partition}:iam::{self.account}:oidc-provider/{host}"
        raise ValueError(f"{self.template}: Ref of a {kind} is not known to this renderer")

    def attribute(self, logical: str, name: str) -> str:
        kind = self.body["Resources"][logical]["Type"]
        if name == "Arn" and kind in ("AWS::IAM::Role", "AWS::IAM::User"):
            path = self._properties(logical).get("Path", "/")
            noun = "role" if kind == "AWS::IAM::Role" else "user"
            return f"arn:{self.partition}:iam::{self.account}:{noun}{path}{self.physical_id(logical)}"
        if name == "Arn" and kind == "AWS::IAM::OIDCProvider":
            return self.physical_id(logical)
        raise ValueError(f"{self.template}: Fn::GetAtt {logical}.{name} is not known to this renderer")

    # -- intrinsic functions ------------------------------------------------------------------
    def _ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.body["Resources"]:
            return self.physical_id(name)
        raise ValueError(f"{self.template}: Ref {name} names nothing")

    def _holds(self, expression: Any) -> bool:
        if isinstance(expression, dict) and set(expression) == {"Condition"}:
            return self.condition(expression["Condition"])
        (function, arguments), *rest = expression.items()
        assert not rest, expression
        if function == "Fn::Equals":
            left, right = (self.resolve(a) for a in arguments)
            return bool(left == right)
        if function == "Fn::Not":
            return not self._holds(arguments[0])
        if function == "Fn::And":
            return all(self._holds(a) for a in arguments)
        if function == "Fn::Or":
            return any(self._holds(a) for a in arguments)
        raise ValueError(f"{self.template}: condition function {function} is not known to this renderer")

    def _sub(self, arguments: Any) -> str:
        text, variables = (arguments, {}) if isinstance(arguments, str) else arguments
        local = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            literal, name = match.groups()
            if literal:
                return "${" + name + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] in self.body["Resources"]:
                return self.attribute(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, arguments), *_ = value.items()
            if function == "Ref" or function.startswith("Fn::"):
                return self._function(function, arguments)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _function(self, function: str, arguments: Any) -> Any:
        if function == "Ref":
            return self._ref(arguments)
        if function == "Fn::Sub":
            return self._sub(arguments)
        if function == "Fn::GetAtt":
            logical, name = arguments if isinstance(arguments, list) else arguments.split(".", 1)
            return self.attribute(logical, name)
        if function == "Fn::If":
            name, yes, no = arguments
            return self.resolve(yes if self.condition(name) else no)
        if function == "Fn::Join":
            separator, items = arguments
            return separator.join(str(i) for i in self.resolve(items))
        if function == "Fn::Split":
            separator, text = arguments
            return str(self.resolve(text)).split(separator)
        if function == "Fn::Select":
            index, items = arguments
            return self.resolve(items)[int(self.resolve(index))]
        if function == "Fn::FindInMap":
            mapping, key, name = (self.resolve(a) for a in arguments)
            return self.body["Mappings"][mapping][key][name]
        raise ValueError(f"{self.template}: {function} is not known to this renderer")

    # -- what the tests read ------------------------------------------------------------------
    def trust_policy(self, logical: str) -> dict[str, Any]:
        document = self.resources[logical]["Properties"]["AssumeRolePolicyDocument"]
        return dict(json.loads(document) if isinstance(document, str) else document)

    def rendered(self) -> dict[str, Any]:
        """The template as CloudFormation deploys it, for third-party scanners: every function
        resolved, resources whose condition is false left out, trust policies as documents;
        each resource keeps its Metadata (the scanners' suppressions) and deletion policies."""
        resources: dict[str, Any] = {}
        for logical, resource in self.resources.items():
            spec = self.body["Resources"][logical]
            properties = dict(resource["Properties"])
            document = properties.get("AssumeRolePolicyDocument")
            if isinstance(document, str):
                properties["AssumeRolePolicyDocument"] = json.loads(document)
            out = {"Type": resource["Type"], "Properties": properties}
            out.update(
                {k: spec[k] for k in ("Metadata", "DeletionPolicy", "UpdateReplacePolicy") if k in spec}
            )
            resources[logical] = out
        return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}

    def statements_by_principal(self) -> dict[str, list[dict[str, Any]]]:
        """The ARN of every role and user the template gives permissions -> the statements that
        apply to it (inline policies, AWS::IAM::Policy and AWS::IAM::ManagedPolicy of this
        template, each statement tagged with its policy's name). Users named in a policy's
        Users are taken to have the path /."""
        by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
        arns: dict[tuple[str, str], str] = {}
        for logical, resource in self.resources.items():
            kind, properties = resource["Type"], resource["Properties"]
            if kind == "AWS::IAM::Role":
                key = ("role", self.physical_id(logical))
                arns[key] = self.attribute(logical, "Arn")
                for policy in properties.get("Policies", []):
                    by_name.setdefault(key, []).extend(
                        _tagged(policy["PolicyDocument"], policy["PolicyName"])
                    )
            if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                label = properties.get("PolicyName") or properties.get("ManagedPolicyName") or logical
                for noun, names in (
                    ("role", properties.get("Roles", [])),
                    ("user", properties.get("Users", [])),
                ):
                    for name in names:
                        key = (noun, name)
                        arns.setdefault(key, f"arn:{self.partition}:iam::{self.account}:{noun}/{name}")
                        by_name.setdefault(key, []).extend(_tagged(properties["PolicyDocument"], label))
        return {arns[key]: statements for key, statements in by_name.items()}


def _tagged(document: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return [{**s, "_policy": policy} for s in (statements if isinstance(statements, list) else [statements])]


def _check(name: str, spec: dict[str, Any], value: str) -> None:
    """A parameter value as CloudFormation checks it before anything is created."""
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        raise ValueError(f"parameter {name}: {value!r} is not one of {spec['AllowedValues']}")
    # A CommaDelimitedList's pattern applies to each item, a String's to the whole value. The
    # pattern is a Java regular expression: \w and \d are ASCII there.
    items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
    for item in items:
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], item, re.ASCII):
            raise ValueError(f"parameter {name}: {item!r} does not match {spec['AllowedPattern']}")
    if spec["Type"] == "Number":
        number = float(value)
        if number < float(spec.get("MinValue", number)) or number > float(spec.get("MaxValue", number)):
            raise ValueError(f"parameter {name}: {value} is out of range")


def deploy_command_parameters(command: str) -> dict[str, str]:
    """The ``--parameter-overrides Key=Value ...`` of an ``aws cloudformation deploy`` command
    (up to the first word that is not ``Key=Value``)."""
    words = command.split()
    start = words.index("--parameter-overrides") + 1
    out = {}
    for word in words[start:]:
        if word.startswith("--") or "=" not in word:
            break
        key, _, value = word.partition("=")
        out[key] = value
    return out
