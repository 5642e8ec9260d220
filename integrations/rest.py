"""What every endpoint of the REST API shares; settings.REST_FRAMEWORK names these.

Apart from integrations/api.py: DRF imports its default classes while it defines APIView,
so this module must not import DRF's views.
"""

from django.core.validators import RegexValidator
from rest_framework import exceptions, pagination, parsers, serializers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a document nested too deeply for Python's parser is a parse error (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


class Pagination(pagination.LimitOffsetPagination):
    """limit/offset as the schema says: limit 1 to MAX_LIMIT, offset 0 or more; anything else is a
    400 (DRF's own falls back to defaults, and sends any limit on to the database)."""

    max_limit = MAX_LIMIT = 1000
    max_offset = MAX_OFFSET = 2**53  # JSON's largest exact integer; the database's bigint holds it

    def get_limit(self, request):
        return self._number(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request):
        return self._number(request, self.offset_query_param, 0, self.max_offset, 0)

    @staticmethod
    def _number(request, name, lowest, highest, default):
        given = request.query_params.getlist(name)
        if not given:
            return default
        if len(given) > 1:
            raise exceptions.ValidationError({name: ["Give this filter once."]})
        text = given[0]
        try:
            number = int(text, 10)
        except ValueError:
            number = None
        if number is None or not lowest <= number <= highest:
            raise exceptions.ValidationError({name: [f"A whole number from {lowest:,} to {highest:,}."]})
        return number

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            bounds = ({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit}
                      if parameter["name"] == self.limit_query_param else {"minimum": 0, "maximum": self.max_offset})
            parameter["schema"].update(bounds)
        return parameters


# A query string may hold NUL, which no database column does (PostgreSQL refuses it in a query):
# the schema says so with a pattern, and the answer is a 400.
NO_NUL = RegexValidator(r"^[^\x00]*$", "NUL characters are not allowed.")


def text_filter(help_text):
    """A filter given as text: not empty, no NUL."""
    return serializers.CharField(required=False, validators=[NO_NUL], help_text=help_text)


def id_filter(help_text):
    """A filter naming a row by its id: a whole number the database's ids can hold (a larger one
    is a 400, not an overflow in the query)."""
    return serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text=help_text)


def query(serializer_class, request):
    """The query string's filters, validated by `serializer_class`; a 400 for any value the
    schema does not allow.

    Read as a plain dict, not as DRF reads a QueryDict (a form, where "?status=" means "not
    given" and a repeated name takes its last value): an empty value is checked as the value
    it is, and a filter given twice is refused, since the schema describes one value each.
    """
    repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1)
    if repeated:
        raise exceptions.ValidationError({name: ["Give this filter once."] for name in repeated})
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data

