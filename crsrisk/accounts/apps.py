from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "crsrisk.accounts"
    label = "accounts"
    verbose_name = "Accounts and audit"
