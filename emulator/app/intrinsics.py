"""CloudFormation intrinsic functions, resolved against the twin's deployed names.

What the translated template may use (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html):
``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` (both forms), ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::FindInMap``, ``Fn::If`` (with ``Fn::Equals``/``Not``/``And``/``Or``
in Conditions) and the pseudo parameters
``AWS::Region``, ``AWS::AccountId``, ``AWS::Partition``, ``AWS::StackName``,
``AWS::URLSuffix``, ``AWS::NoValue``. Any other ``Fn::`` is refused, naming where it is.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from emulator.contracts import aws
from emulator.contracts.errors import DefinitionFileError

NO_VALUE = object()  # AWS::NoValue: the property is dropped
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")

RefLookup = Callable[[str], Any]
AttLookup = Callable[[str, str], Any]


class Resolver:
    """Resolve intrinsics in a value.

    Args:
        ref: value of ``Ref`` to a parameter or a resource logical id (raises KeyError if unknown).
        get_att: value of ``Fn::GetAtt`` (raises KeyError if unknown).
        stack_name: the value of ``AWS::StackName``.
        mappings: the template's Mappings section.
        conditions: evaluated Conditions (name -> bool).
    """

    def __init__(self, ref: RefLookup, get_att: AttLookup, stack_name: str,
                 mappings: dict[str, Any] | None = None, conditions: dict[str, bool] | None = None) -> None:
        self._ref = ref
        self._get_att = get_att
        self.pseudo = {
            "AWS::Region": aws.REGION, "AWS::AccountId": aws.ACCOUNT_ID, "AWS::Partition": aws.PARTITION,
            "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com",
        }
        self.mappings = mappings or {}
        self.conditions = conditions or {}

    def ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        try:
            return self._ref(name)
        except KeyError:
            raise DefinitionFileError(f"{where}: Ref {name!r} names no parameter or resource of the template") from None

    def get_att(self, logical: str, attribute: str, where: str) -> Any:
        try:
            return self._get_att(logical, attribute)
        except KeyError:
            raise DefinitionFileError(f"{where}: Fn::GetAtt {logical}.{attribute} is not an attribute the twin "
                                      "provides (Arn, Name of functions, state machines and buckets)") from None

    def resolve(self, value: Any, where: str) -> Any:
        """``value`` with every intrinsic replaced; ``NO_VALUE`` entries dropped."""
        if isinstance(value, list):
            out = [self.resolve(v, where) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(str(arg), where)
            if key == "Condition":
                return self.conditions.get(str(arg), False)
            if key.startswith("Fn::"):
                return self._function(key, arg, where)
        out = {}
        for key, item in value.items():
            resolved = self.resolve(item, f"{where}.{key}")
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _function(self, key: str, arg: Any, where: str) -> Any:
        if key == "Fn::GetAtt":
            logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.get_att(logical, self.resolve(attribute, where), where)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1], where))
            return self._sub(text, variables, where)
        if key == "Fn::Join":
            sep, items = arg
            return str(self.resolve(sep, where)).join(str(v) for v in self.resolve(items, where))
        if key == "Fn::Select":
            index, items = self.resolve(arg, where)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg, where)
            return str(text).split(sep)
        if key == "Fn::FindInMap":
            name, top, second = self.resolve(arg, where)
            try:
                return self.mappings[name][top][second]
            except KeyError:
                raise DefinitionFileError(f"{where}: Fn::FindInMap {name}/{top}/{second} is not in Mappings") from None
        if key == "Fn::Equals":
            left, right = self.resolve(arg, where)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg, where)[0]
        if key == "Fn::And":
            return all(self.resolve(arg, where))
        if key == "Fn::Or":
            return any(self.resolve(arg, where))
        if key == "Fn::If":
            condition, yes, no = arg
            return self.resolve(yes if self.conditions.get(condition, False) else no, where)
        raise DefinitionFileError(f"{where}: intrinsic function {key} is not supported by the twin; "
                                  "use Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap or Fn::If")

    def _sub(self, text: str, variables: dict[str, Any], where: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute, where))
            return str(self.ref(name, where))

        # ${!Literal} stays as ${Literal}, per the Fn::Sub rules.
        return _SUB_VAR.sub(one, text).replace("${!", "${")
