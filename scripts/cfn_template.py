"""Read veil's CloudFormation templates (deploy/cloudformation/*.yaml) outside CloudFormation.

The emulator seed attaches the templates' own policy documents to the roles it creates on moto
(which cannot deploy them faithfully), and the Rust tests assert what no emulator applies
(lifecycle, encryption, trust conditions) on the templates themselves. Both read them here:

  load(path)                   the template as plain data, short tags (!Sub, !GetAtt, ...) in
                               their long form ({"Fn::Sub": ...})
  Resolver(template, params)   evaluates conditions and intrinsic functions for given parameters

Usage: cfn_template.py TEMPLATE [PARAMETERS_JSON]
  prints the template as JSON: in long form, or with PARAMETERS_JSON resolved for those
  parameters, resources whose condition is false left out and every resource, attribute and
  import named symbolically (Ref Queue -> "Queue", GetAtt Queue.Arn -> "Queue.Arn",
  ImportValue X -> "import:X"). Needs only PyYAML.
"""

import json
import re
import sys

import yaml

NO_VALUE = object()


class _Loader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _short in ["Ref", "Condition"]:
    _Loader.add_constructor(f"!{_short}", _tag(_short))
for _short in ["Sub", "GetAtt", "If", "Equals", "Not", "Or", "And", "Join", "Select", "Split",
               "ImportValue", "Base64", "GetAZs", "FindInMap"]:
    _Loader.add_constructor(f"!{_short}", _tag(f"Fn::{_short}"))


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


class Resolver:
    """Evaluates a template's intrinsic functions for `parameters` (defaults fill the rest).

    `resources` maps a logical id to its physical id (what Ref returns), `attributes` maps
    "Logical.Attr" to a value and `imports` an export's name to its value: they stand for what
    a deployment would have created.
    """

    def __init__(self, template, parameters, account="111111111111", region="us-east-1",
                 stack="veil", resources=None, attributes=None, imports=None, symbolic=False):
        self.template = template
        self.values = {
            "AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": "aws",
            "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com",
        }
        for name, spec in template.get("Parameters", {}).items():
            if name in parameters:
                value = parameters[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise KeyError(f"parameter {name} has no value and no default")
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = [v.strip() for v in value.split(",")] if value else []
            self.values[name] = value if isinstance(value, list) else str(value)
        self.values.update(resources or {})
        self.attributes = attributes or {}
        self.imports = imports or {}
        self.symbolic = symbolic

    def condition(self, name):
        return self.resolve(self.template["Conditions"][name])

    def resource(self, logical_id):
        """The resource's resolved Properties, or None when its condition is false."""
        resource = self.template["Resources"][logical_id]
        if "Condition" in resource and not self.condition(resource["Condition"]):
            return None
        return self.resolve(resource.get("Properties", {}))

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            function = getattr(self, "_" + key.replace("Fn::", "fn_"), None)
            if function:
                return function(arg)
        out = {}
        for k, v in node.items():
            v = self.resolve(v)
            if v is not NO_VALUE:
                out[k] = v
        return out

    def _Ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self.values:
            if self.symbolic and name in self.template["Resources"]:
                return name
            raise KeyError(f"Ref {name}: not a parameter and no physical id given")
        return self.values[name]

    def _Condition(self, name):
        return self.condition(name)

    def _fn_GetAtt(self, arg):
        key = ".".join(arg)
        if key not in self.attributes:
            if self.symbolic:
                return key
            raise KeyError(f"GetAtt {key}: no value given")
        return self.attributes[key]

    def _fn_Sub(self, arg):
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._fn_GetAtt(name.split(".", 1)))
            return str(self._Ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def _fn_ImportValue(self, arg):
        name = self.resolve(arg)
        if name not in self.imports:
            if self.symbolic:
                return f"import:{name}"
            raise KeyError(f"ImportValue {name}: no such export")
        return self.imports[name]

    def _fn_If(self, arg):
        name, yes, no = arg
        return self.resolve(yes if self.condition(name) else no)

    def _fn_Equals(self, arg):
        a, b = (self.resolve(x) for x in arg)
        return str(a) == str(b)

    def _fn_Not(self, arg):
        return not self.resolve(arg[0])

    def _fn_Or(self, arg):
        return any(self.resolve(x) for x in arg)

    def _fn_And(self, arg):
        return all(self.resolve(x) for x in arg)

    def _fn_Join(self, arg):
        return arg[0].join(str(x) for x in self.resolve(arg[1]))

    def _fn_Select(self, arg):
        return self.resolve(arg[1])[int(self.resolve(arg[0]))]

    def _fn_Split(self, arg):
        return self.resolve(arg[1]).split(arg[0])


def resolved(template, parameters):
    """The whole template resolved for `parameters`, symbolically (see the usage above)."""
    resolver = Resolver(template, parameters, symbolic=True)
    out = dict(template)
    out["Resources"] = {}
    for logical_id, resource in template["Resources"].items():
        properties = resolver.resource(logical_id)
        if properties is not None:
            out["Resources"][logical_id] = {**resource, "Properties": properties}
    out["Outputs"] = {k: resolver.resolve(v["Value"]) for k, v in template.get("Outputs", {}).items()
                      if "Condition" not in v or resolver.condition(v["Condition"])}
    return out


if __name__ == "__main__":
    template = load(sys.argv[1])
    if len(sys.argv) > 2:
        template = resolved(template, json.loads(sys.argv[2]))
    json.dump(template, sys.stdout, indent=1, default=str)
    print()
