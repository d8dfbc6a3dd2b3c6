from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "crsrisk.accounts"
    label = "accounts"
    verbose_name = "Accounts and audit"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from crsrisk.accounts import appendonly, signals  # noqa: F401  # connect receivers

        post_migrate.connect(appendonly.install_after_migrate, dispatch_uid="crsrisk_append_only")
