from offgate import config


def test_defaults_filled():
    c = config.validate({"gate_id": 5, "zone": 2})
    assert c["max_age_s"] == 60 and c["skew_s"] == 30 and c["state_dir"] == "state"


def test_errors_name_each_bad_setting():
    try:
        config.validate({"zone": "x", "skew_s": -1, "cache_size": True})
        assert False
    except config.ConfigError as e:
        msg = str(e)
        assert "gate_id: missing" in msg and "zone:" in msg and "skew_s" in msg and "cache_size" in msg


def test_board_settings_pass_through():
    assert config.validate({"gate_id": 1, "zone": 1, "relay_pin": 4})["relay_pin"] == 4


def test_bad_json_file():
    from fwutil import scratch_dir, write
    d = scratch_dir("cfg")
    write(d + "/g.json", b"{not json")
    try:
        config.load(d + "/g.json")
        assert False
    except config.ConfigError as e:
        assert "not valid JSON" in str(e)
