"""Every URL of the portal, plus two reference views through the same middleware, measured in the
same run as the uploads:

- POST /bench/trivial/: {"ok": true}, without touching the database: the ceiling of what the
  server answers;
- POST /bench/one-insert/: the body stored as one row of a bare table (bench_one_insert, made by
  the benchmark), committed: the floor of what any upload costs that is stored durably, with no
  token, no check, no history and no processing.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # a machine endpoint, as the data endpoint is
def trivial(request):
    return JsonResponse({"ok": True})


ONE_INSERT_TABLE = "bench_one_insert"


@csrf_exempt
def one_insert(request):
    with connection.cursor() as cursor:  # autocommit: one statement, one durable commit
        cursor.execute(f"INSERT INTO {ONE_INSERT_TABLE} (body) VALUES (%s)", [request.body.decode()])
    return JsonResponse({"ok": True}, status=201)


urlpatterns = [
    path("bench/trivial/", trivial),
    path("bench/one-insert/", one_insert),
    path("", include("portal.urls")),
]
