"""The Sparkplug B payload message (``org.eclipse.tahu.protobuf.Payload``) and its datatypes.

The message classes are built by the ``protobuf`` runtime from the serialized file descriptor of
the specification's ``sparkplug_b.proto`` (kept beside this module; the bytes below are the
``serialized_pb`` of ``python/core/sparkplug_b_pb2.py`` in eclipse/tahu at commit
5736e404889d4b95910613040a99ba79589ffb13, which protoc generated from that file). A private
descriptor pool keeps them from clashing with another copy of the same ``.proto`` in the process.

The class is built on first use (:func:`payload_class`), not at import: ``google.protobuf`` and the
descriptor cost ~45 ms, and every process that reads a mappings file (each CLI command) imports this
module without ever decoding a Sparkplug payload.
"""

from __future__ import annotations

import base64
import functools
from enum import IntEnum
from typing import Any

_DESCRIPTOR = base64.b64decode(
    "ChFzcGFya3BsdWdfYi5wcm90bxIZb3JnLmVjbGlwc2UudGFodS5wcm90b2J1ZiLuFQoHUGF5bG9hZBIRCgl0aW1lc3RhbXAYASAB"
    "KAQSOgoHbWV0cmljcxgCIAMoCzIpLm9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5NZXRyaWMSCwoDc2VxGAMgASgE"
    "EgwKBHV1aWQYBCABKAkSDAoEYm9keRgFIAEoDBqmBAoIVGVtcGxhdGUSDwoHdmVyc2lvbhgBIAEoCRI6CgdtZXRyaWNzGAIgAygL"
    "Mikub3JnLmVjbGlwc2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLk1ldHJpYxJJCgpwYXJhbWV0ZXJzGAMgAygLMjUub3JnLmVjbGlw"
    "c2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLlRlbXBsYXRlLlBhcmFtZXRlchIUCgx0ZW1wbGF0ZV9yZWYYBCABKAkSFQoNaXNfZGVm"
    "aW5pdGlvbhgFIAEoCBrKAgoJUGFyYW1ldGVyEgwKBG5hbWUYASABKAkSDAoEdHlwZRgCIAEoDRITCglpbnRfdmFsdWUYAyABKA1I"
    "ABIUCgpsb25nX3ZhbHVlGAQgASgESAASFQoLZmxvYXRfdmFsdWUYBSABKAJIABIWCgxkb3VibGVfdmFsdWUYBiABKAFIABIXCg1i"
    "b29sZWFuX3ZhbHVlGAcgASgISAASFgoMc3RyaW5nX3ZhbHVlGAggASgJSAASaAoPZXh0ZW5zaW9uX3ZhbHVlGAkgASgLMk0ub3Jn"
    "LmVjbGlwc2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLlRlbXBsYXRlLlBhcmFtZXRlci5QYXJhbWV0ZXJWYWx1ZUV4dGVuc2lvbkgA"
    "GiMKF1BhcmFtZXRlclZhbHVlRXh0ZW5zaW9uKggIARCAgICAAkIHCgV2YWx1ZSoICAYQgICAgAIalwQKB0RhdGFTZXQSFgoObnVt"
    "X29mX2NvbHVtbnMYASABKAQSDwoHY29sdW1ucxgCIAMoCRINCgV0eXBlcxgDIAMoDRI8CgRyb3dzGAQgAygLMi4ub3JnLmVjbGlw"
    "c2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLkRhdGFTZXQuUm93Gq8CCgxEYXRhU2V0VmFsdWUSEwoJaW50X3ZhbHVlGAEgASgNSAAS"
    "FAoKbG9uZ192YWx1ZRgCIAEoBEgAEhUKC2Zsb2F0X3ZhbHVlGAMgASgCSAASFgoMZG91YmxlX3ZhbHVlGAQgASgBSAASFwoNYm9v"
    "bGVhbl92YWx1ZRgFIAEoCEgAEhYKDHN0cmluZ192YWx1ZRgGIAEoCUgAEmgKD2V4dGVuc2lvbl92YWx1ZRgHIAEoCzJNLm9yZy5l"
    "Y2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5EYXRhU2V0LkRhdGFTZXRWYWx1ZS5EYXRhU2V0VmFsdWVFeHRlbnNpb25IABoh"
    "ChVEYXRhU2V0VmFsdWVFeHRlbnNpb24qCAgBEICAgIACQgcKBXZhbHVlGloKA1JvdxJJCghlbGVtZW50cxgBIAMoCzI3Lm9yZy5l"
    "Y2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5EYXRhU2V0LkRhdGFTZXRWYWx1ZSoICAIQgICAgAIqCAgFEICAgIACGukDCg1Q"
    "cm9wZXJ0eVZhbHVlEgwKBHR5cGUYASABKA0SDwoHaXNfbnVsbBgCIAEoCBITCglpbnRfdmFsdWUYAyABKA1IABIUCgpsb25nX3Zh"
    "bHVlGAQgASgESAASFQoLZmxvYXRfdmFsdWUYBSABKAJIABIWCgxkb3VibGVfdmFsdWUYBiABKAFIABIXCg1ib29sZWFuX3ZhbHVl"
    "GAcgASgISAASFgoMc3RyaW5nX3ZhbHVlGAggASgJSAASSwoRcHJvcGVydHlzZXRfdmFsdWUYCSABKAsyLi5vcmcuZWNsaXBzZS50"
    "YWh1LnByb3RvYnVmLlBheWxvYWQuUHJvcGVydHlTZXRIABJQChJwcm9wZXJ0eXNldHNfdmFsdWUYCiABKAsyMi5vcmcuZWNsaXBz"
    "ZS50YWh1LnByb3RvYnVmLlBheWxvYWQuUHJvcGVydHlTZXRMaXN0SAASYgoPZXh0ZW5zaW9uX3ZhbHVlGAsgASgLMkcub3JnLmVj"
    "bGlwc2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLlByb3BlcnR5VmFsdWUuUHJvcGVydHlWYWx1ZUV4dGVuc2lvbkgAGiIKFlByb3Bl"
    "cnR5VmFsdWVFeHRlbnNpb24qCAgBEICAgIACQgcKBXZhbHVlGmcKC1Byb3BlcnR5U2V0EgwKBGtleXMYASADKAkSQAoGdmFsdWVz"
    "GAIgAygLMjAub3JnLmVjbGlwc2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLlByb3BlcnR5VmFsdWUqCAgDEICAgIACGmAKD1Byb3Bl"
    "cnR5U2V0TGlzdBJDCgtwcm9wZXJ0eXNldBgBIAMoCzIuLm9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5Qcm9wZXJ0"
    "eVNldCoICAIQgICAgAIapAEKCE1ldGFEYXRhEhUKDWlzX211bHRpX3BhcnQYASABKAgSFAoMY29udGVudF90eXBlGAIgASgJEgwK"
    "BHNpemUYAyABKAQSCwoDc2VxGAQgASgEEhEKCWZpbGVfbmFtZRgFIAEoCRIRCglmaWxlX3R5cGUYBiABKAkSCwoDbWQ1GAcgASgJ"
    "EhMKC2Rlc2NyaXB0aW9uGAggASgJKggICRCAgICAAhq/BQoGTWV0cmljEgwKBG5hbWUYASABKAkSDQoFYWxpYXMYAiABKAQSEQoJ"
    "dGltZXN0YW1wGAMgASgEEhAKCGRhdGF0eXBlGAQgASgNEhUKDWlzX2hpc3RvcmljYWwYBSABKAgSFAoMaXNfdHJhbnNpZW50GAYg"
    "ASgIEg8KB2lzX251bGwYByABKAgSPQoIbWV0YWRhdGEYCCABKAsyKy5vcmcuZWNsaXBzZS50YWh1LnByb3RvYnVmLlBheWxvYWQu"
    "TWV0YURhdGESQgoKcHJvcGVydGllcxgJIAEoCzIuLm9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5Qcm9wZXJ0eVNl"
    "dBITCglpbnRfdmFsdWUYCiABKA1IABIUCgpsb25nX3ZhbHVlGAsgASgESAASFQoLZmxvYXRfdmFsdWUYDCABKAJIABIWCgxkb3Vi"
    "bGVfdmFsdWUYDSABKAFIABIXCg1ib29sZWFuX3ZhbHVlGA4gASgISAASFgoMc3RyaW5nX3ZhbHVlGA8gASgJSAASFQoLYnl0ZXNf"
    "dmFsdWUYECABKAxIABJDCg1kYXRhc2V0X3ZhbHVlGBEgASgLMioub3JnLmVjbGlwc2UudGFodS5wcm90b2J1Zi5QYXlsb2FkLkRh"
    "dGFTZXRIABJFCg50ZW1wbGF0ZV92YWx1ZRgSIAEoCzIrLm9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5UZW1wbGF0"
    "ZUgAElkKD2V4dGVuc2lvbl92YWx1ZRgTIAEoCzI+Lm9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWYuUGF5bG9hZC5NZXRyaWMuTWV0"
    "cmljVmFsdWVFeHRlbnNpb25IABogChRNZXRyaWNWYWx1ZUV4dGVuc2lvbioICAEQgICAgAJCBwoFdmFsdWUqCAgGEICAgIACQiwK"
    "GW9yZy5lY2xpcHNlLnRhaHUucHJvdG9idWZCD1NwYXJrcGx1Z0JQcm90bw=="
)


@functools.cache
def payload_class() -> Any:
    """The ``Payload`` message class: ``payload_class().FromString(bytes)`` parses; ``payload_class()()``
    builds one (``SerializeToString()``). Built once, on the first call."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # lazily: see module docstring

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(_DESCRIPTOR))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


class DataType(IntEnum):
    """Sparkplug B metric datatypes (specification 3.0, section 6.4.16)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTYSET = 20
    PROPERTYSETLIST = 21
    INT8_ARRAY = 22
    INT16_ARRAY = 23
    INT32_ARRAY = 24
    INT64_ARRAY = 25
    UINT8_ARRAY = 26
    UINT16_ARRAY = 27
    UINT32_ARRAY = 28
    UINT64_ARRAY = 29
    FLOAT_ARRAY = 30
    DOUBLE_ARRAY = 31
    BOOLEAN_ARRAY = 32
    STRING_ARRAY = 33
    DATETIME_ARRAY = 34
