from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.models import AuditEvent, Company, Membership
from core.roles import Role
from core.services import COMPANY_EDITABLE_FIELDS


class CompanySerializer(serializers.ModelSerializer):
    bin_display = serializers.CharField(read_only=True)

    class Meta:
        model = Company
        fields = [
            "id",
            "slug",
            *COMPANY_EDITABLE_FIELDS,
            "bin_display",
            "created_at",
            "updated_at",
        ]
        # Switching a company off is the platform's decision, not an owner's.
        read_only_fields = ["id", "slug", "is_active", "created_at", "updated_at"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "username", "email", "role", "created_at"]
        read_only_fields = ["id", "user", "username", "email", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    """A new member: creates their user account in this company."""

    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(
        write_only=True,
        style={"input_type": "password"},
        help_text="Initial password; Django's password rules apply.",
    )
    first_name = serializers.CharField(max_length=150, required=False, default="")
    last_name = serializers.CharField(max_length=150, required=False, default="")
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AuditEventSerializer(serializers.ModelSerializer):
    company = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "company",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "request_id",
        ]
        read_only_fields = fields


class MeMembershipSerializer(serializers.ModelSerializer):
    company = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    company_name = serializers.CharField(source="company.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["company", "company_name", "role"]


class MeSerializer(serializers.ModelSerializer):
    memberships = MeMembershipSerializer(many=True, read_only=True)

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "memberships"]
        read_only_fields = fields
