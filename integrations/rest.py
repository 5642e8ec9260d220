"""What every endpoint of the REST API shares; settings.REST_FRAMEWORK names these.

Apart from integrations/api.py: DRF imports its default classes while it defines APIView,
so this module must not import DRF's views.
"""

from rest_framework import exceptions, pagination, parsers


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
        text = request.query_params.get(name)
        if text is None:
            return default
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
