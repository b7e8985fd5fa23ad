"""Payloads as each firmware's own documentation shows them (URL beside each), for the preset tests."""

from __future__ import annotations

# https://tasmota.github.io/docs/MQTT/ (telemetry: tele/%topic%/SENSOR, LWT Online/Offline) and
# https://tasmota.github.io/docs/JSON-Status-Responses/ (ENERGY object of a power-monitoring plug)
TASMOTA_SENSOR = (
    b'{"Time":"2021-01-01T00:00:00","ENERGY":{"TotalStartTime":"2020-12-31T10:38:40","Total":0.003,'
    b'"Yesterday":0.000,"Today":0.003,"Power":12,"ApparentPower":20,"ReactivePower":16,"Factor":0.60,'
    b'"Voltage":234,"Current":0.085}}'
)
TASMOTA_SENSOR_AM2301 = (
    b'{"Time":"2021-01-01T00:00:00","AM2301":{"Temperature":21.6,"Humidity":53.4,"DewPoint":11.6},"TempUnit":"C"}'
)
TASMOTA_STATE = (
    b'{"Time":"2024-02-24T22:20:38","Uptime":"0T00:10:11","UptimeSec":611,"Heap":24,"SleepMode":"Dynamic",'
    b'"Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"OFF","Wifi":{"AP":1,"SSId":"ESP-Network",'
    b'"BSSId":"E6:8D:8C:4B:BE:F7","Channel":3,"Mode":"11n","RSSI":44,"Signal":-78,"LinkCount":1,'
    b'"Downtime":"0T00:00:05"}}'
)

# https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html (zigbee2mqtt/FRIENDLY_NAME,
# zigbee2mqtt/FRIENDLY_NAME/availability) and the Aqara WSDCGQ11LM page's exposes
# (https://www.zigbee2mqtt.io/devices/WSDCGQ11LM.html)
Z2M_STATE = b'{"battery":100,"humidity":58.12,"linkquality":78,"pressure":1008,"temperature":22.15,"voltage":3055}'
Z2M_AVAILABILITY_JSON = b'{"state":"online"}'
Z2M_AVAILABILITY_PLAIN = b"offline"

# https://shelly-api-docs.shelly.cloud/gen2/General/Notifications (NotifyStatus, NotifyEvent)
SHELLY_NOTIFY_STATUS = (
    b'{"src":"shellypro4pm-f008d1d8b8b8","dst":"user_1","method":"NotifyStatus",'
    b'"params":{"ts":1631266595.43,"switch:0":{"id":0,"output":true,"source":"button"}}}'
)
SHELLY_NOTIFY_POWER = (
    b'{"src":"shellyplus1pm-a8032ab636ec","dst":"shellyplus1pm-a8032ab636ec/events","method":"NotifyStatus",'
    b'"params":{"ts":1631266600.01,"switch:0":{"id":0,"apower":8.9,"voltage":237.5,"current":0.043,'
    b'"aenergy":{"total":6.532,"by_minute":[45.199,47.141,88.397],"minute_ts":1631266600}}}}'
)
SHELLY_NOTIFY_EVENT = (
    b'{"src":"shellypro4pm-f008d1d8b8b8","dst":"user_1","method":"NotifyEvent",'
    b'"params":{"ts":1631266595.44,"events":[{"component":"input:0","id":0,"event":"single_push","ts":1631266595.44}]}}'
)

# https://esphome.io/components/mqtt.html (<topic_prefix>/sensor/<name>/state, <topic_prefix>/status)
ESPHOME_SENSOR = b"21.5"
ESPHOME_BINARY = b"ON"
ESPHOME_STATUS = b"online"

# https://www.thethingsindustries.com/docs/the-things-stack/concepts/data-formats/ (uplink message)
TTN_UPLINK = b"""{
  "end_device_ids" : {
    "device_id" : "dev1",
    "application_ids" : {"application_id" : "app1"},
    "dev_eui" : "0004A30B001C0530",
    "join_eui" : "800000000000000C",
    "dev_addr" : "00BCB929"
  },
  "correlation_ids" : ["as:up:01E0WZGT8KYPMYTNEG9A1AYEQ1"],
  "received_at" : "2020-02-12T15:15:07.513712812Z",
  "uplink_message" : {
    "session_key_id": "AXA50...",
    "f_port": 1,
    "f_cnt": 25,
    "frm_payload": "CHY=",
    "decoded_payload" : {"temperature": 21.5, "battery": {"voltage": 3.6}},
    "rx_metadata": [{
      "gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
      "time": "2020-02-12T15:15:07.488Z",
      "timestamp": 2463457000,
      "rssi": -35,
      "channel_rssi": -35,
      "snr": 5.2,
      "uplink_token": "ChIKEAoEZ3R3MRIIk...",
      "channel_index": 2
    }, {
      "gateway_ids": {"gateway_id": "gtw2"},
      "rssi": -71,
      "channel_rssi": -71,
      "snr": 11.5
    }],
    "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "frequency": "868300000"},
    "received_at": "2020-02-12T15:15:07.493Z",
    "consumed_airtime": "0.056576s"
  }
}"""

ISSUE_FILE = """\
[[mapping]]
preset = "tasmota"

[[mapping]]
preset = "zigbee2mqtt"

[[mapping]]
topic = "plant/+/{device}/env"
kind = "telemetry"
time = { path = "t", format = "rfc3339" }
fields = { temperature = "temp_c", humidity = "rh", "vibration.x" = "accel.x" }
units = { temperature = "Cel", humidity = "%RH" }
"""
"""The file in issue 18, verbatim."""

ALL_PRESETS = (
    ISSUE_FILE.replace('preset = "tasmota"', 'preset = "tasmota"\ntimezone = "Europe/Berlin"')
    + """
[[mapping]]
preset = "shelly_gen2"

[[mapping]]
preset = "esphome"

[[mapping]]
preset = "ttn_v3"
"""
)
