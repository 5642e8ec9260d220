"""Reference 001's endpoints under /api/v3/: accounts, groups, activity and objective scores.

Authenticated by Standard API tokens (REST_FRAMEWORK's defaults); everything is narrowed to the
token's tenant, and another tenant's id answers 404. Every path answers with and without its
trailing slash (the seed's own example is `/api/v3/account`), never with a redirect. Only the
two score APIs are throttled (throttling.py).
"""

from django.db.models import Count, Prefetch
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers
from rest_framework.views import APIView

from integrations.rest import Pagination, id_filter, query, text_filter
from uploads.models import Account, Group

from . import scoring
from .directory import search_accounts
from .models import Period, ScoreKind
from .throttling import ActivityScoreThrottle, ObjectiveScoreThrottle

DETAIL = inline_serializer("PublicApiDetail", fields={"detail": serializers.CharField()})


# --- Accounts and groups ----------------------------------------------------------------------


class AccountSerializer(serializers.ModelSerializer):
    manager = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                           help_text="The manager's username; null when none")
    groups = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Group IDs it is a member of")
    managed_groups = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Group IDs it manages")
    reports = serializers.IntegerField(source="report_count", read_only=True,
                                       help_text="How many accounts it manages directly (a manager has one or more)")

    class Meta:
        model = Account
        fields = ["id", "username", "email", "manager", "reports", "groups", "managed_groups", "created_at"]
        read_only_fields = fields


ACCOUNT_EXAMPLE = {"id": 41, "username": "jason", "email": "jason@yourcompany.com", "manager": "maria",
                   "reports": 0, "groups": [7], "managed_groups": [], "created_at": "2026-11-02T09:14:05Z"}


class GroupSerializer(serializers.ModelSerializer):
    group_id = serializers.CharField(read_only=True, help_text="The Group ID: the EntityID of the group's scores")
    members = serializers.SlugRelatedField(source="accounts", slug_field="username", many=True, read_only=True,
                                           help_text="Members' usernames")
    managers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True,
                                            help_text="Managers' usernames")

    class Meta:
        model = Group
        fields = ["id", "group_id", "name", "members", "managers"]
        read_only_fields = fields


GROUP_EXAMPLE = {"id": 7, "group_id": "7", "name": "East", "members": ["jason", "lee"], "managers": ["maria"]}


def _paginated(example):
    return {"count": 1, "next": None, "previous": None, "results": [example]}


class AccountFilters(serializers.Serializer):
    search = text_filter("Part of the email or username (any case)")
    email = text_filter("Exactly this email (any case)")
    username = text_filter("Exactly this username")
    manager = text_filter("Only the direct reports of this username")
    group = id_filter("Only the members of this Group ID")


class GroupFilters(serializers.Serializer):
    search = text_filter("Part of the name (any case)")
    name = text_filter("Exactly this name")
    member = text_filter("Only the groups this username is a member of")


def accounts_of(tenant):
    return (Account.objects.filter(tenant=tenant).select_related("manager")
            .prefetch_related(Prefetch("groups", Group.objects.only("id")),
                              Prefetch("managed_groups", Group.objects.only("id")))
            .annotate(report_count=Count("reports", distinct=True)).order_by("username", "id"))


def groups_of(tenant):
    return (Group.objects.filter(tenant=tenant)
            .prefetch_related(Prefetch("accounts", Account.objects.only("id", "username").order_by("username")),
                              Prefetch("managers", Account.objects.only("id", "username").order_by("username")))
            .order_by("name", "id"))


class ReadOnly:
    http_method_names = ["get", "head", "options"]


@extend_schema(tags=["accounts"])
class AccountList(ReadOnly, generics.ListAPIView):
    serializer_class = AccountSerializer
    queryset = Account.objects.none()  # narrowed to the caller's tenant in get_queryset

    @extend_schema(
        summary="Accounts: the people data is attributed to",
        description="The seed's own example answers here as it is written: `curl -H \"Authorization: Token "
                    "AUTH_TOKEN\" -H \"Content-Type: application/json\" https://HOST/api/v3/account`. A username is "
                    "the EntityID of an individual's and a manager's scores.",
        parameters=[AccountFilters],
        examples=[OpenApiExample("An account", value=_paginated(ACCOUNT_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        Account.fill_usernames(self.request.user.tenant.pk)
        wanted = query(AccountFilters, self.request)
        accounts = search_accounts(accounts_of(self.request.user.tenant), wanted.get("search"))
        if "email" in wanted:
            accounts = accounts.filter(email__iexact=wanted["email"].strip())
        if "username" in wanted:
            accounts = accounts.filter(username=wanted["username"].strip())
        if "manager" in wanted:
            accounts = accounts.filter(manager__username=wanted["manager"].strip())
        if "group" in wanted:
            accounts = accounts.filter(groups__id=wanted["group"])
        return accounts


@extend_schema(tags=["accounts"])
class AccountDetail(ReadOnly, generics.RetrieveAPIView):
    serializer_class = AccountSerializer
    queryset = Account.objects.none()

    @extend_schema(summary="One account", responses={200: AccountSerializer, 404: DETAIL},
                   examples=[OpenApiExample("An account", value=ACCOUNT_EXAMPLE, response_only=True)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        Account.fill_usernames(self.request.user.tenant.pk)
        return accounts_of(self.request.user.tenant)


@extend_schema(tags=["groups"])
class GroupList(ReadOnly, generics.ListAPIView):
    serializer_class = GroupSerializer
    queryset = Group.objects.none()

    @extend_schema(
        summary="Groups: their Group ID, name, members and managers",
        description="A group's scores name it by its Group ID; this is where the ID becomes a name.",
        parameters=[GroupFilters],
        examples=[OpenApiExample("A group", value=_paginated(GROUP_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        wanted = query(GroupFilters, self.request)
        groups = groups_of(self.request.user.tenant)
        if wanted.get("search", "").strip():
            groups = groups.filter(name__icontains=wanted["search"].strip())
        if "name" in wanted:
            groups = groups.filter(name=wanted["name"].strip())
        if "member" in wanted:
            groups = groups.filter(accounts__username=wanted["member"].strip())
        return groups


@extend_schema(tags=["groups"])
class GroupDetail(ReadOnly, generics.RetrieveAPIView):
    serializer_class = GroupSerializer
    queryset = Group.objects.none()

    @extend_schema(summary="One group, by its Group ID", responses={200: GroupSerializer, 404: DETAIL},
                   examples=[OpenApiExample("A group", value=GROUP_EXAMPLE, response_only=True)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return groups_of(self.request.user.tenant)


# --- Scores -----------------------------------------------------------------------------------


class ScoreQuery(serializers.Serializer):
    period = serializers.ChoiceField(choices=Period.values, default=Period.DAY,
                                     help_text="day, week (Monday to Sunday) or month")
    date = serializers.DateField(required=False, help_text="YYYY-MM-DD: a day in the period (default: today, UTC)")
    date_to = serializers.DateField(required=False, help_text=(
        "YYYY-MM-DD: with it, every period from the one holding `date` to the one holding `date_to` "
        f"(at most {scoring.MAX_PERIODS} periods)"))
    entity_type = serializers.ChoiceField(choices=scoring.ENTITY_TYPES, required=False,
                                          help_text="individual, manager or group")
    entity_id = text_filter("One EntityID: a username, or a Group ID")

    def validate(self, data):
        data.setdefault("date", timezone.now().date())
        if data.get("date_to") and data["date_to"] < data["date"]:
            raise serializers.ValidationError({"date_to": "date_to is before date."})
        starts = scoring.period_starts(data["period"], data["date"], data.get("date_to") or data["date"])
        if len(starts) > scoring.MAX_PERIODS:
            raise serializers.ValidationError({"date_to": f"At most {scoring.MAX_PERIODS} periods at a time."})
        return data


class ScoreMetricSerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="The metric's name")
    data_type = serializers.CharField(help_text="The data type of the integration whose values it counts")
    weight = serializers.FloatField()
    goal = serializers.FloatField(help_text="The goal for one person in this period")
    value = serializers.FloatField(help_text="The value in the period; for managers and groups, the members' mean")
    attainment = serializers.FloatField(help_text=(
        "value / goal in percent, capped (150 by default); for managers and groups, the members' mean"))


class ScoreSerializer(serializers.Serializer):
    entity_id = serializers.CharField(help_text="EntityID: the username of an individual or a manager, the Group ID "
                                                "of a group")
    entity_type = serializers.ChoiceField(choices=scoring.ENTITY_TYPES)
    name = serializers.CharField(help_text="The account's email, or the group's name")
    members = serializers.IntegerField(help_text="1 for an individual; the direct reports of a manager; the members "
                                                 "of a group")
    period = serializers.ChoiceField(choices=Period.values)
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    score = serializers.FloatField(allow_null=True, help_text=(
        "0 to the scorecard's cap (150 by default): the weighted attainment of the goals; null when the scorecard "
        "has no metric for this score"))
    metrics = ScoreMetricSerializer(many=True)


SCORE_EXAMPLE = {
    "entity_id": "jason", "entity_type": "individual", "name": "jason@yourcompany.com", "members": 1,
    "period": "day", "period_start": "2026-11-16", "period_end": "2026-11-16", "score": 87.5,
    "metrics": [
        {"metric": "calls", "data_type": "activity", "weight": 2.0, "goal": 40.0, "value": 44.0, "attainment": 110.0},
        {"metric": "talk_minutes", "data_type": "activity", "weight": 1.0, "goal": 120.0, "value": 51.0,
         "attainment": 42.5},
    ],
}
GROUP_SCORE_EXAMPLE = {**SCORE_EXAMPLE, "entity_id": "7", "entity_type": "group", "name": "East", "members": 12,
                       "score": 93.1}
THROTTLED_EXAMPLE = {"detail": "Too Many Requests: the Activity Score API allows 30 calls a minute per tenant. "
                               "Expected available in 42 seconds."}


class ScorePagination(Pagination):
    max_limit = 10_000  # a month of daily scores of a large tenant in a few calls, under the throttle


class ScoreView(APIView):
    """Scores of one kind, for every account, manager and group of the tenant, per period."""

    kind = ""
    pagination_class = ScorePagination

    def get(self, request):
        wanted = query(ScoreQuery, request)
        table = scoring.compute_scores(request.user.tenant.pk, self.kind, wanted["period"], wanted["date"],
                                       wanted.get("date_to")).only(wanted.get("entity_type"), wanted.get("entity_id"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(table, request, view=self)
        return paginator.get_paginated_response(ScoreSerializer(page, many=True).data)

    def check_throttles(self, request):
        # One throttle per score API, holding both of its windows: the first refusal answers.
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                raise exceptions.Throttled(wait=throttle.wait(), detail=throttle.refusal())


def score_schema(kind, label):
    return extend_schema(
        tags=["scores"], summary=f"{label} scores of individuals, managers and groups, per period",
        description=(
            f"Each row is one EntityID's {label.lower()} score for one period: the username for individuals and "
            "managers, the Group ID for groups (the Group API names it). Computed from the tenant's metric values "
            "against its scorecard when asked (docs/scores.md); values of integrations in Sandbox Mode never count."
            f"\n\nThrottled: the {label} Score API allows **30 calls a minute and 1000 a day per tenant** (every "
            "token of the tenant counts towards the same quota). A refused call answers 429 with a `Retry-After` "
            "header (seconds) and a body containing \"Too Many Requests\"; it does not use up the day's quota."),
        parameters=[ScoreQuery],
        responses={
            200: ScoreSerializer(many=True),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="A query parameter is wrong, e.g. "
                                 '{"period": ["\\"year\\" is not a valid choice."]}'),
            429: OpenApiResponse(DETAIL, description="Too Many Requests; `Retry-After` says after how many seconds "
                                 "the next call fits", examples=[OpenApiExample("Throttled", value=THROTTLED_EXAMPLE)]),
        },
        examples=[OpenApiExample(f"{label} scores", value={"count": 2, "next": None, "previous": None,
                                                           "results": [SCORE_EXAMPLE, GROUP_SCORE_EXAMPLE]},
                                 response_only=True, status_codes=["200"])],
    )


@score_schema(ScoreKind.ACTIVITY, "Activity")
class ActivityScoreView(ScoreView):
    kind = ScoreKind.ACTIVITY
    throttle_classes = [ActivityScoreThrottle]


@score_schema(ScoreKind.OBJECTIVE, "Objective")
class ObjectiveScoreView(ScoreView):
    kind = ScoreKind.OBJECTIVE
    throttle_classes = [ObjectiveScoreThrottle]


def both(route, view, name):
    """The route without its trailing slash (as the seed writes it, and in the schema) and with it:
    the same view, answered directly."""
    return [path(route, view.as_view(), name=name),
            path(f"{route}/", view.as_view(schema=None), name=f"{name}_slash")]


def urlpatterns():
    return [
        *both("account", AccountList, "api-account-list"),
        *both("account/<int:pk>", AccountDetail, "api-account-detail"),
        *both("group", GroupList, "api-group-list"),
        *both("group/<int:pk>", GroupDetail, "api-group-detail"),
        *both("activity-score", ActivityScoreView, "api-activity-score"),
        *both("objective-score", ObjectiveScoreView, "api-objective-score"),
    ]
