"""Reference 001's pages: accounts, groups, the scorecard and its scores (tenant pages), and an
outbound integration's Pulled data tab. Thin: a form checks, a plain function works, a page shows."""

import csv
import datetime

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from integrations import services
from integrations.models import Direction, Integration
from portal.tenancy import tenant_view
from uploads.errors import IntakeError
from uploads.intake import receive
from uploads.models import Account, CallLog, Group, Upload

from . import pulls, scoring
from .charts import line_chart
from .directory import search_accounts
from .forms import AccountForm, GroupForm, PullForm, ScorecardEntryForm, ScorePeriodForm
from .models import Period, Pull, PulledAccount, PulledGroup, PulledScore, Scorecard, ScoreKind

PROTOCOL = "public_api"
IMPORT_NAME = "Accounts and groups (CSV)"


# --- Accounts and groups ------------------------------------------------------------------------


@tenant_view()
def account_list(request):
    Account.fill_usernames(request.tenant.pk)
    query = request.GET.get("q", "")
    accounts = search_accounts(Account.objects.filter(tenant=request.tenant), query).select_related("manager") \
        .prefetch_related("groups").annotate(report_count=Count("reports", distinct=True)).order_by("username")
    page = Paginator(accounts, 100).get_page(request.GET.get("page"))
    return render(request, "protocols/public_api/accounts.html", {"page": page, "query": query})


@tenant_view(edit=True)
def account_edit(request, pk=None):
    account = get_object_or_404(Account.objects.filter(tenant=request.tenant), pk=pk) if pk else None
    form = AccountForm(request.POST or None, instance=account, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
        messages.success(request, f"Account “{saved.username}” saved.")
        return redirect("public_api_accounts", request.tenant.slug)
    return render(request, "protocols/public_api/account_form.html", {"form": form, "account": account})


@tenant_view(edit=True)
@require_POST
def account_delete(request, pk):
    account = get_object_or_404(Account.objects.filter(tenant=request.tenant), pk=pk)
    account.delete()
    messages.success(request, f"Account “{account.username}” deleted, with its metric values.")
    return redirect("public_api_accounts", request.tenant.slug)


@tenant_view()
def group_list(request):
    groups = (Group.objects.filter(tenant=request.tenant).annotate(member_count=Count("accounts", distinct=True))
              .prefetch_related("managers").order_by("name"))
    query = request.GET.get("q", "").strip()
    if query:
        groups = groups.filter(name__icontains=query)
    page = Paginator(groups, 100).get_page(request.GET.get("page"))
    return render(request, "protocols/public_api/groups.html", {"page": page, "query": query})


@tenant_view(edit=True)
def group_edit(request, pk=None):
    group = get_object_or_404(Group.objects.filter(tenant=request.tenant), pk=pk) if pk else None
    form = GroupForm(request.POST or None, instance=group, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
        messages.success(request, f"Group “{saved.name}” saved (Group ID {saved.group_id}).")
        return redirect("public_api_groups", request.tenant.slug)
    return render(request, "protocols/public_api/group_form.html", {"form": form, "group": group})


@tenant_view(edit=True)
@require_POST
def group_delete(request, pk):
    group = get_object_or_404(Group.objects.filter(tenant=request.tenant), pk=pk)
    group.delete()
    messages.success(request, f"Group “{group.name}” deleted; its members stay.")
    return redirect("public_api_groups", request.tenant.slug)


def import_integration(tenant):
    """The tenant's inbound integration of this protocol that CSV files of accounts go to."""
    return Integration.objects.filter(tenant=tenant, protocol=PROTOCOL, direction=Direction.INBOUND).order_by("id") \
        .first()


@tenant_view(edit=True)
def account_import(request):
    """Import accounts and groups from a CSV file, through the one intake (an upload of the
    tenant's import integration, made when it has none)."""
    if request.method == "POST" and request.FILES.get("file"):
        file = request.FILES["file"]
        integration = import_integration(request.tenant) or services.create_integration(
            request.tenant, request.user, name=IMPORT_NAME, protocol=PROTOCOL, direction=Direction.INBOUND)
        try:
            upload = receive(integration, file, content_type="text/csv", channel=Upload.Channel.WEB,
                             submitted_by=request.user, submitted_via=request.user.get_username(),
                             filename=file.name)
        except IntakeError as problem:
            return render(request, "protocols/public_api/import.html",
                          {"errors": problem.errors, "total_errors": problem.total}, status=problem.status)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("public_api_import", request.tenant.slug)
        messages.success(request, f"{upload.records:,} accounts received; they are queued for import.")
        return redirect(upload)
    return render(request, "protocols/public_api/import.html", {})


# --- Scorecard and scores -----------------------------------------------------------------------


def scorecard_of(tenant):
    return Scorecard.objects.get_or_create(tenant=tenant)[0]


@tenant_view()
def scorecard(request):
    card = scorecard_of(request.tenant)
    form = ScorecardEntryForm(request.POST or None, scorecard=card)
    if request.method == "POST":
        if not request.membership.can_edit:
            return render(request, "403.html", {"reason": "You need the “Integrations: Edit” permission."}, status=403)
        if form.is_valid():
            entry = form.save()
            messages.success(request, f"{entry.metric.name} added to the {entry.get_kind_display().lower()}.")
            return redirect("public_api_scorecard", request.tenant.slug)
    period_form = ScorePeriodForm(request.GET or None)
    period, day = Period.MONTH, timezone.now().date()
    if period_form.is_valid():
        period, day = period_form.cleaned_data["period"], period_form.cleaned_data["date"] or day
    activity = scoring.compute_scores(request.tenant.pk, ScoreKind.ACTIVITY, period, day)
    objective = scoring.compute_scores(request.tenant.pk, ScoreKind.OBJECTIVE, period, day)
    rows = [{**a, "objective": o["score"]} for a, o in zip(activity, objective)]
    team_rows = [row for row in rows if row["entity_type"] != scoring.INDIVIDUAL]
    people = Paginator([row for row in rows if row["entity_type"] == scoring.INDIVIDUAL], 100) \
        .get_page(request.GET.get("page"))
    end = scoring.period_end(scoring.period_start(day, period), period)
    last = min(end, timezone.now().date())  # the days to come have no scores yet: not drawn as zeros
    first = last - datetime.timedelta(days=29)
    daily = [scoring.compute_scores(request.tenant.pk, kind, Period.DAY, first, last).means(scoring.INDIVIDUAL)
             for kind in (ScoreKind.ACTIVITY, ScoreKind.OBJECTIVE)]
    chart = line_chart([first + datetime.timedelta(days=i) for i in range(30)],
                       [("Activity", daily[0]), ("Objective", daily[1])])
    return render(request, "protocols/public_api/scorecard.html", {
        "scorecard": card, "entries": card.entries.select_related("metric__integration"), "form": form,
        "period_form": period_form, "period": period, "period_start": scoring.period_start(day, period),
        "period_end": end, "team_rows": team_rows, "people": people, "chart": chart, "first": first, "last": last,
        "query": request.GET.urlencode(),
    })


@tenant_view(edit=True)
def entry_edit(request, pk):
    card = scorecard_of(request.tenant)
    entry = get_object_or_404(card.entries, pk=pk)
    form = ScorecardEntryForm(request.POST or None, instance=entry, scorecard=card)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Scorecard entry saved.")
        return redirect("public_api_scorecard", request.tenant.slug)
    return render(request, "protocols/public_api/entry_form.html", {"form": form, "entry": entry})


@tenant_view(edit=True)
@require_POST
def entry_delete(request, pk):
    entry = get_object_or_404(scorecard_of(request.tenant).entries, pk=pk)
    entry.delete()
    messages.success(request, f"{entry.metric.name} taken off the scorecard.")
    return redirect("public_api_scorecard", request.tenant.slug)


# --- Integration tabs ---------------------------------------------------------------------------


def _integration(request, pk, direction):
    return get_object_or_404(Integration.objects.filter(tenant=request.tenant, protocol=PROTOCOL,
                                                        direction=direction), pk=pk)


@tenant_view()
def directory_tab(request, pk):
    """An import integration's tab: what its files feed, and where to manage it."""
    integration = _integration(request, pk, Direction.INBOUND)
    return render(request, "protocols/public_api/directory_tab.html", {
        "integration": integration, "tab": "directory",
        "accounts": Account.objects.filter(tenant=request.tenant).count(),
        "groups": Group.objects.filter(tenant=request.tenant).count(),
        "entries": scorecard_of(request.tenant).entries.count(),
    })


@tenant_view()
def pulled_tab(request, pk):
    """An outbound integration's Pulled data tab: pull now, the pulls, what the newest one read."""
    integration = _integration(request, pk, Direction.OUTBOUND)
    form = PullForm(request.POST or None, initial={
        "period": (integration.settings or {}).get("period", Period.DAY),
        "date": (timezone.now() - datetime.timedelta(days=1)).date()})
    if request.method == "POST":
        if not request.membership.can_edit:
            return render(request, "403.html", {"reason": "You need the “Integrations: Edit” permission."}, status=403)
        if form.is_valid():
            try:
                pull = pulls.start_pull(integration, request.user.get_username(), form.cleaned_data["period"],
                                        form.cleaned_data["date"])
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, f"Pull #{pull.pk} started: {pulls.period_label(pull)}.")
                return redirect("public_api_pulled", request.tenant.slug, pk)
    recent = list(Pull.objects.filter(integration=integration)[:10])
    latest = pulls.latest_done(integration)
    shown = recent[0] if recent else None
    calls = CallLog.objects.none()
    if shown is not None:
        calls = CallLog.objects.filter(integration=integration, created_at__gte=shown.created_at)
        if shown.finished_at:
            calls = calls.filter(created_at__lte=shown.finished_at)
    scores = _pulled_scores(integration, latest) if latest else []
    return render(request, "protocols/public_api/pulled_tab.html", {
        "integration": integration, "tab": "pulled", "form": form, "pulls": recent, "latest": latest,
        "shown": shown, "calls": calls.order_by("created_at", "id")[:200], "scores": scores[:200],
        "score_count": len(scores),
        "accounts": PulledAccount.objects.filter(pull=latest)[:200] if latest else [],
        "groups": PulledGroup.objects.filter(pull=latest)[:200] if latest else [],
    })


def _pulled_scores(integration, pull):
    """The scores of a pull's period, activity and objective side by side, per EntityID."""
    rows = {}
    for score in PulledScore.objects.filter(integration=integration, period=pull.period,
                                            period_start=pull.period_start):
        row = rows.setdefault((score.entity_type, score.entity_id), {
            "entity_type": score.entity_type, "entity_id": score.entity_id, "name": score.name,
            "activity": None, "objective": None})
        row[score.kind] = score.score
    order = {scoring.INDIVIDUAL: 0, scoring.MANAGER: 1, scoring.GROUP: 2}
    return sorted(rows.values(), key=lambda r: (order.get(r["entity_type"], 3), r["entity_id"]))


@tenant_view()
def pulled_csv(request, pk, what):
    if what not in ("accounts", "groups", "scores"):
        raise Http404("No such download")
    integration = _integration(request, pk, Direction.OUTBOUND)
    latest = pulls.latest_done(integration)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{integration.pk}-{what}.csv"'
    writer = csv.writer(response)
    if what == "accounts":
        writer.writerow(["username", "email", "manager", "groups", "vendor_id"])
        for a in PulledAccount.objects.filter(pull=latest) if latest else []:
            writer.writerow([_cell(a.username), _cell(a.email), _cell(a.manager), _cell(";".join(a.groups)),
                             _cell(a.vendor_id)])
    elif what == "groups":
        writer.writerow(["group_id", "name", "members", "managers"])
        for g in PulledGroup.objects.filter(pull=latest) if latest else []:
            writer.writerow([_cell(g.group_id), _cell(g.name), _cell(";".join(g.members)),
                             _cell(";".join(g.managers))])
    else:
        writer.writerow(["period", "period_start", "entity_type", "entity_id", "name", "kind", "score"])
        for s in PulledScore.objects.filter(integration=integration).order_by("period", "period_start", "kind",
                                                                             "entity_type", "entity_id"):
            writer.writerow([s.period, s.period_start, s.entity_type, _cell(s.entity_id), _cell(s.name), s.kind,
                             "" if s.score is None else s.score])
    return response


def _cell(value):
    """No formulas for spreadsheet programs in a file of the vendor's data."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


urlpatterns = [
    path("accounts/", account_list, name="public_api_accounts"),
    path("accounts/new/", account_edit, name="public_api_account_create"),
    path("accounts/import/", account_import, name="public_api_import"),
    path("accounts/<int:pk>/", account_edit, name="public_api_account_edit"),
    path("accounts/<int:pk>/delete/", account_delete, name="public_api_account_delete"),
    path("groups/", group_list, name="public_api_groups"),
    path("groups/new/", group_edit, name="public_api_group_create"),
    path("groups/<int:pk>/", group_edit, name="public_api_group_edit"),
    path("groups/<int:pk>/delete/", group_delete, name="public_api_group_delete"),
    path("scorecard/", scorecard, name="public_api_scorecard"),
    path("scorecard/entries/<int:pk>/", entry_edit, name="public_api_entry_edit"),
    path("scorecard/entries/<int:pk>/delete/", entry_delete, name="public_api_entry_delete"),
    path("integrations/<int:pk>/directory/", directory_tab, name="public_api_directory"),
    path("integrations/<int:pk>/pulled/", pulled_tab, name="public_api_pulled"),
    path("integrations/<int:pk>/pulled/<str:what>.csv", pulled_csv, name="public_api_pulled_csv"),
]
