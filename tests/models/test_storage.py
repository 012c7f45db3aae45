"""What the database holds: encrypted secrets, hashed keys, links that cannot duplicate."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tortoise.exceptions import IntegrityError

from models import Account, ApiKey, Integration, Provider, RecordLink, User
from models.vault import Vault, VaultError


async def test_psa_secrets_are_encrypted_at_rest_and_never_in_reprs(
    account: Account, vault: Vault
) -> None:
    integration = Integration(
        account=account, provider=Provider.CONNECTWISE_MANAGE, name="CW", site_url="https://x"
    )
    integration.set_credentials(vault, {"private_key": "very-secret-private"})
    await integration.save()

    raw = await Integration.filter(id=integration.id).values_list("credentials_token", flat=True)
    assert "very-secret-private" not in raw[0]
    loaded = await Integration.get(id=integration.id)
    assert loaded.credentials(vault) == {"private_key": "very-secret-private"}
    assert "very-secret" not in repr(loaded)
    assert raw[0] not in repr(loaded)
    assert raw[0] not in str(loaded)


def test_a_token_from_another_key_gives_a_clear_error_without_the_token() -> None:
    token = Vault([Vault.generate_key()]).encrypt({"a": 1})
    with pytest.raises(VaultError) as caught:
        Vault([Vault.generate_key()]).decrypt(token)
    assert token not in str(caught.value)
    assert "cannot be decrypted" in str(caught.value)


async def test_api_keys_are_stored_hashed(account: Account) -> None:
    user = await User.create(account=account, email="a@example.com", role="administrator")
    key, digest = ApiKey.generate()
    await ApiKey.create(account=account, user=user, prefix=key[:8], key_hash=digest)
    stored = await ApiKey.get(user=user)
    assert stored.key_hash != key
    assert stored.key_hash == ApiKey.hash(key)
    assert key not in str(await ApiKey.all().values())


async def test_a_duplicate_link_is_impossible_even_from_concurrent_writers(
    account: Account, vault: Vault
) -> None:
    integration = Integration(
        account=account, provider=Provider.CONNECTWISE_MANAGE, name="CW", site_url="https://x"
    )
    integration.set_credentials(vault, {})
    await integration.save()

    async def link(local_id: uuid.UUID) -> RecordLink:
        return await RecordLink.create(
            integration=integration, kind="organization", local_id=local_id, psa_id=42
        )

    results = await asyncio.gather(link(uuid.uuid4()), link(uuid.uuid4()), return_exceptions=True)
    assert sum(isinstance(r, RecordLink) for r in results) == 1
    assert sum(isinstance(r, IntegrityError) for r in results) == 1

    same_local = uuid.uuid4()
    await RecordLink.create(integration=integration, kind="contact", local_id=same_local, psa_id=1)
    with pytest.raises(IntegrityError):
        await RecordLink.create(
            integration=integration, kind="contact", local_id=same_local, psa_id=2
        )
