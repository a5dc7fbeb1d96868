from mlstack.registry.policy import Incumbent, decide_registration


def test_first_model_becomes_champion():
    d = decide_registration(50_000, None, None)
    assert d.alias == "champion" and "first model" in d.reason


def test_better_model_becomes_challenger():
    d = decide_registration(45_000, Incumbent("champion", "1", 50_000), None)
    assert d.alias == "challenger" and "v1" in d.reason


def test_equal_or_worse_model_gets_no_alias():
    champ = Incumbent("champion", "1", 50_000)
    assert decide_registration(50_000, champ, None).alias is None
    assert decide_registration(51_000, champ, None).alias is None


def test_min_improvement_margin():
    champ = Incumbent("champion", "1", 50_000)
    assert decide_registration(49_600, champ, None, min_improvement=0.01).alias is None
    assert decide_registration(49_400, champ, None, min_improvement=0.01).alias == "challenger"


def test_better_challenger_is_kept():
    champ, chall = Incumbent("champion", "1", 50_000), Incumbent("challenger", "2", 44_000)
    d = decide_registration(45_000, champ, chall)
    assert d.alias is None and "challenger v2" in d.reason
    assert decide_registration(43_000, champ, chall).alias == "challenger"
