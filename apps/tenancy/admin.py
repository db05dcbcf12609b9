from django.contrib import admin, messages

from apps.tenancy.models import ApiKey, App, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "public_id", "retention_days", "legacy_ingestion"]
    list_select_related = ["organization"]
    list_filter = ["organization", "legacy_ingestion"]
    search_fields = ["name", "slug", "public_id"]
    readonly_fields = ["public_id", "created_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "app", "organization", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["app", "organization"]
    list_filter = ["organization"]
    search_fields = ["prefix", "name"]
    readonly_fields = ["prefix", "organization", "created_at", "last_used_at"]
    actions = ["revoke_keys"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["app", "name"]
        return ["prefix", "name", "app", "organization", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "app"] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        raw_key = None if change else obj.generate_secret()
        super().save_model(request, obj, form, change)
        if raw_key:
            messages.warning(request, f"New API key (shown only this once, copy it now): {raw_key}")

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:  # one by one, not update(): revoke() drops the key from the API's cache
            key.revoke()
        self.message_user(request, f"Revoked {len(keys)} key(s).")
