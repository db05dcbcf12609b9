"""The Settings page's forms. Which app, key or organization a POST is about is resolved by the view
(among the user's own: another organization's is a 404) before any of these sees the data."""

from __future__ import annotations

from django import forms

from apps.tenancy.models import App, Membership

MAX_RETENTION_DAYS = 36500  # a hundred years: anything longer is "keep forever"


class AppSettingsForm(forms.ModelForm):
    """An app's name, retention (empty or 0 days keeps its runs forever) and legacy ingestion by app id."""

    retention_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_RETENTION_DAYS,
        label="Retention (days)",
        help_text="Empty or 0: keep forever.",
        widget=forms.NumberInput(attrs={"placeholder": "forever", "inputmode": "numeric"}),
    )

    class Meta:
        model = App
        fields = ["name", "retention_days", "legacy_ingestion"]
        labels = {"legacy_ingestion": "Accept events by app id, without a key (LLMonitor SDK)"}

    def __init__(self, *args, **kwargs):
        instance = kwargs.get("instance")
        # Ids unique on a page that holds one form per app.
        kwargs.setdefault("auto_id", f"app-{instance.public_id}-%s" if instance else "id_%s")
        super().__init__(*args, **kwargs)

    def clean_retention_days(self) -> int | None:
        return self.cleaned_data["retention_days"] or None


class ApiKeyForm(forms.Form):
    """A new key: which of the organization's apps it reports to by default, and a name to recognise it by."""

    app = forms.ChoiceField(label="App")
    name = forms.CharField(
        max_length=200, label="Name", widget=forms.TextInput(attrs={"placeholder": "e.g. production"})
    )

    def __init__(self, *args, apps: list[App], **kwargs):
        kwargs.setdefault("auto_id", "key-%s")
        super().__init__(*args, **kwargs)
        self.fields["app"].choices = [(str(app.public_id), app.name) for app in apps]


class MemberForm(forms.Form):
    """An existing user, by username, and their role in the organization."""

    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER, label="Role")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "member-%s")
        super().__init__(*args, **kwargs)
