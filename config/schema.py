"""OpenAPI component names for the styleguide's nested serializers: `JudgmentSubmitApi.InputSerializer` is
`JudgmentSubmitInput`, so two views' `InputSerializer`s never collide in the schema."""

from drf_spectacular.openapi import AutoSchema

NESTED_NAMES = ("InputSerializer", "OutputSerializer")


class TandemAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction) -> str:
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if outer and "<locals>" not in outer and inner in NESTED_NAMES:
            return outer.rsplit(".", 1)[-1].removesuffix("Api") + inner
        return super().get_serializer_name(serializer, direction)
