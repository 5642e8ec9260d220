"""Reference 001's own tables: the scorecard that scores are computed against (inbound), and
what pulls read from a vendor's API (outbound)."""

from django.core.validators import MinValueValidator
from django.db import models


class Period(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (Monday to Sunday)"
    MONTH = "month", "Month"


class ScoreKind(models.TextChoices):
    ACTIVITY = "activity", "Activity score"
    OBJECTIVE = "objective", "Objective score"


class Scorecard(models.Model):
    """A tenant's scorecard: which metrics count towards the activity and the objective score,
    with what weight and goal (docs/scores.md)."""

    tenant = models.OneToOneField("portal.Tenant", on_delete=models.CASCADE, related_name="scorecard")
    attainment_cap = models.PositiveSmallIntegerField(
        default=150, validators=[MinValueValidator(100)],
        help_text="Attainment of one goal counts up to this many percent (at least 100).")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Scorecard of {self.tenant}"


class ScorecardEntry(models.Model):
    """One metric on the scorecard: its weight, and its goal per day, week and month."""

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="entries")
    metric = models.ForeignKey("integrations.Metric", on_delete=models.CASCADE, related_name="scorecard_entries")
    kind = models.CharField(max_length=10, choices=ScoreKind.choices, default=ScoreKind.ACTIVITY,
                            help_text="Activity metrics make the activity score; objectives the objective score.")
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.01)])
    goal_day = models.FloatField("Goal per day", validators=[MinValueValidator(0.000001)])
    goal_week = models.FloatField("Goal per week", validators=[MinValueValidator(0.000001)])
    goal_month = models.FloatField("Goal per month", validators=[MinValueValidator(0.000001)])

    class Meta:
        ordering = ["kind", "metric__name", "id"]
        verbose_name_plural = "scorecard entries"
        constraints = [models.UniqueConstraint(fields=["scorecard", "metric", "kind"],
                                               name="scorecard_metric_once_per_kind")]

    def __str__(self):
        return f"{self.metric.name} ({self.get_kind_display()}, weight {self.weight:g})"

    def goal(self, period):
        return {Period.DAY: self.goal_day, Period.WEEK: self.goal_week, Period.MONTH: self.goal_month}[period]


# --- Outbound: what the portal reads from a vendor's public API ------------------------------


class Pull(models.Model):
    """One reading of a vendor's API: its accounts, its groups, and the scores of one period.

    Made in steps by a Celery task (pulls.py): each step claims the next step number with a
    conditional update, so that a duplicated task makes no request twice; a step that must
    wait (the vendor's limits, a 429's Retry-After) asks for the next one after a countdown.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Reading"
        WAITING = "waiting", "Waiting (the vendor's limits)"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    STAGES = ("accounts", "groups", "activity", "objective")

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="public_api_pulls")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="pulls")
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.DAY)
    period_start = models.DateField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=10, default="accounts", help_text="What is being read: " + ", ".join(STAGES))
    next_url = models.TextField(blank=True, help_text="The next page of the stage, as the vendor gave it")
    step = models.PositiveIntegerField(default=0, help_text="The number of the step last claimed")
    failures = models.PositiveSmallIntegerField(default=0, help_text="Passing failures (5xx, no answer) so far")
    counts = models.JSONField(default=dict, blank=True, help_text="Records read, per stage")
    message = models.CharField(max_length=500, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["integration", "-created_at"], name="pull_newest")]

    def __str__(self):
        return f"Pull #{self.pk} of {self.integration} ({self.period} from {self.period_start})"

    @property
    def is_active(self):
        return self.status in (self.Status.QUEUED, self.Status.RUNNING, self.Status.WAITING)


class PulledAccount(models.Model):
    """An account as the vendor's Account API gave it (the newest finished pull's are shown)."""

    pull = models.ForeignKey(Pull, on_delete=models.CASCADE, related_name="accounts")
    vendor_id = models.CharField(max_length=100, blank=True)
    username = models.CharField(max_length=150)
    email = models.CharField(max_length=254, blank=True)
    manager = models.CharField(max_length=150, blank=True, help_text="The manager's username")
    groups = models.JSONField(default=list, blank=True, help_text="Group IDs")

    class Meta:
        ordering = ["username", "id"]


class PulledGroup(models.Model):
    """A group as the vendor's Group API gave it: its Group ID is what score rows name it by."""

    pull = models.ForeignKey(Pull, on_delete=models.CASCADE, related_name="groups")
    group_id = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    members = models.JSONField(default=list, blank=True, help_text="Usernames")
    managers = models.JSONField(default=list, blank=True, help_text="Usernames")

    class Meta:
        ordering = ["name", "id"]


class PulledScore(models.Model):
    """A score the vendor's activity or objective score API gave; the newest pull of a period replaces it."""

    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="pulled_scores")
    pull = models.ForeignKey(Pull, null=True, on_delete=models.SET_NULL, related_name="scores")
    kind = models.CharField(max_length=10, choices=ScoreKind.choices)
    entity_type = models.CharField(max_length=20)
    entity_id = models.CharField(max_length=150)
    name = models.CharField(max_length=254, blank=True)
    period = models.CharField(max_length=5, choices=Period.choices)
    period_start = models.DateField()
    score = models.FloatField(null=True)

    class Meta:
        ordering = ["period_start", "entity_type", "entity_id", "kind"]
        constraints = [models.UniqueConstraint(
            fields=["integration", "period", "period_start", "kind", "entity_type", "entity_id"],
            name="pulled_score_once_per_period")]
