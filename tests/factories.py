"""factory_boy factories for the tenancy models; runs and events are made through the real ingestion API."""

import factory
from django.contrib.auth import get_user_model

from apps.tenancy.models import App, Membership, Organization


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("password")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.LazyAttribute(lambda org: org.name.lower().replace(" ", "-"))


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"App {n}")
    slug = factory.LazyAttribute(lambda app: app.name.lower().replace(" ", "-"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER
