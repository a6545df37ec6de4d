"""The simulated plant: PI points, the AF hierarchy, templates and event frames.

Everything here is a pure function of :class:`~pi_simulator.config.PlantConfig`; building a plant
of 10,000 tags and 10,000 elements takes well under a second. Time series values are not stored:
:mod:`pi_simulator.series` generates them from each point's parameters.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from .config import PlantConfig
from .hashing import key
from .pitime import TICKS_PER_SECOND, parse_duration

DATA_SERVER_NAME = "PISRV01"
ASSET_SERVER_NAME = "AFSRV01"
ASSET_DATABASE_NAME = "Plant"

#: PI's system digital states (the "SYSTEM" state set): name -> code.
SYSTEM_STATES = {
    "I/O Timeout": 246, "No Data": 248, "Calc Failed": 249, "Pt Created": 251,
    "Shutdown": 254, "Bad Input": 307, "Comm Fail": 313,
}
DIGITAL_SETS = {
    "RunStatus": ["Stopped", "Running", "Fault"],
    "Modes": ["Manual", "Auto", "Cascade", "Off"],
    "ValvePosition": ["Closed", "Open", "Travel"],
}
#: Values of String points; chosen to exercise JSON escaping.
STRING_VALUES = [
    "Batch started", "Batch complete", 'Operator note: "check seal"', "Line 1\nLine 2",
    "Température élevée", "Δp high ✓", "C:\\data\\export.csv", "", "OK", "Sample taken",
]
ERROR_TEXTS = [
    "[-11059] No Good Data For Calculation",
    "[-10722] PINET: Timeout on PI RPC or System Call",
]


@dataclass(frozen=True)
class Measurement:
    code: str
    point_type: str  # Float32, Float64, Int32, Digital, String, Timestamp
    units: str = ""
    digital_set: str | None = None
    level: float = 0.0
    amplitude: float = 1.0


_MEASUREMENTS = {
    "TEMP": Measurement("TEMP", "Float32", "degC", level=80.0, amplitude=15.0),
    "PRES": Measurement("PRES", "Float32", "kPa", level=450.0, amplitude=60.0),
    "FLOW": Measurement("FLOW", "Float64", "m3/h", level=120.0, amplitude=30.0),
    "LEVEL": Measurement("LEVEL", "Float64", "%", level=55.0, amplitude=25.0),
    "SPEED": Measurement("SPEED", "Int32", "rpm", level=1480.0, amplitude=40.0),
    "POWER": Measurement("POWER", "Float32", "kW", level=250.0, amplitude=80.0),
    "VIB": Measurement("VIB", "Float32", "mm/s", level=2.5, amplitude=1.0),
    "STATUS": Measurement("STATUS", "Digital", digital_set="RunStatus"),
    "MODE": Measurement("MODE", "Digital", digital_set="Modes"),
    "VALVE": Measurement("VALVE", "Digital", digital_set="ValvePosition"),
    "BATCH": Measurement("BATCH", "String"),
    "LASTCAL": Measurement("LASTCAL", "Timestamp"),
}


@dataclass(frozen=True)
class EquipmentKind:
    template: str
    code: str
    categories: tuple[str, ...]
    measurements: tuple[str, ...]


EQUIPMENT_KINDS = (
    EquipmentKind("Pump", "P", ("Rotating", "Critical"), ("TEMP", "PRES", "FLOW", "SPEED", "STATUS", "VIB")),
    EquipmentKind("Compressor", "K", ("Rotating",), ("TEMP", "PRES", "POWER", "SPEED", "STATUS", "MODE")),
    EquipmentKind("Tank", "T", ("Static",), ("LEVEL", "TEMP", "BATCH", "VALVE")),
    EquipmentKind("HeatExchanger", "E", ("Static", "Utilities"), ("TEMP", "PRES", "FLOW", "LASTCAL")),
)
EVENT_FRAME_TEMPLATES = {
    # name: (mean duration seconds, severity choices, attribute names)
    "Downtime": (4 * 3600, ("None",), ("Reason", "Lost Production")),
    "Batch": (8 * 3600, ("None",), ("Product", "Batch ID", "Quantity")),
    "Alarm": (1800, ("Minor", "Major", "Critical"), ("Limit", "Peak Value")),
    "Maintenance": (12 * 3600, ("Information",), ("Work Order", "Technician")),
}
SAMPLING_SECONDS = (1, 5, 10, 30, 60, 300, 900, 3600)
SAMPLING_WEIGHTS = (3, 8, 12, 20, 35, 12, 6, 4)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _guid(*parts: int) -> uuid.UUID:
    return uuid.UUID(int=(key(*parts) << 64) | key(*parts, 1))


def _web_id(marker: str, owner: uuid.UUID, thing: uuid.UUID | int, path: str) -> str:
    """A WebID 2.0 "Full" shaped identifier: type marker, owner and object ids, encoded path."""
    thing_bytes = thing.bytes_le if isinstance(thing, uuid.UUID) else thing.to_bytes(4, "little")
    return f"F1{marker}{_b64(owner.bytes_le)}{_b64(thing_bytes)}{_b64(path.upper().encode())}"


@dataclass(eq=False)
class Point:
    index: int
    point_id: int
    name: str
    web_id: str
    path: str
    measurement: Measurement
    descriptor: str
    # time series behaviour
    key: int
    interval_ticks: int
    phase_ticks: int
    irregular: bool
    late: bool
    period_seconds: float
    noise: float

    @property
    def point_type(self) -> str:
        return self.measurement.point_type

    @property
    def is_numeric(self) -> bool:
        return self.measurement.point_type in ("Float32", "Float64", "Int32")

    @property
    def span(self) -> float:
        return 4 * self.measurement.amplitude if self.is_numeric else 0.0

    @property
    def zero(self) -> float:
        return self.measurement.level - 2 * self.measurement.amplitude if self.is_numeric else 0.0

    @property
    def units(self) -> str:
        return self.measurement.units

    def to_json(self, base_url: str) -> dict:
        return {
            "WebId": self.web_id,
            "Id": self.point_id,
            "Name": self.name,
            "Path": self.path,
            "Descriptor": self.descriptor,
            "PointClass": "classic",
            "PointType": self.point_type,
            "DigitalSetName": self.measurement.digital_set or "",
            "EngineeringUnits": self.units,
            "Span": self.span,
            "Zero": self.zero,
            "Step": self.point_type in ("Digital", "String", "Timestamp", "Int32"),
            "Future": False,
            "DisplayDigits": -5,
            "Links": {
                "Self": f"{base_url}/points/{self.web_id}",
                "DataServer": f"{base_url}/dataservers/{Plant.data_server_web_id()}",
                "Attributes": f"{base_url}/points/{self.web_id}/attributes",
                "InterpolatedData": f"{base_url}/streams/{self.web_id}/interpolated",
                "RecordedData": f"{base_url}/streams/{self.web_id}/recorded",
                "PlotData": f"{base_url}/streams/{self.web_id}/plot",
                "SummaryData": f"{base_url}/streams/{self.web_id}/summary",
                "Value": f"{base_url}/streams/{self.web_id}/value",
                "EndValue": f"{base_url}/streams/{self.web_id}/end",
            },
        }


@dataclass(eq=False)
class Attribute:
    web_id: str
    id: uuid.UUID
    name: str
    path: str
    element: "Element | EventFrame"
    type: str
    units: str = ""
    point: Point | None = None
    static_value: object = None
    is_configuration_item: bool = False

    @property
    def data_reference(self) -> str:
        return "PI Point" if self.point else ""

    @property
    def config_string(self) -> str:
        return f"\\\\{DATA_SERVER_NAME}\\{self.point.name}" if self.point else ""

    def to_json(self, base_url: str) -> dict:
        links = {
            "Self": f"{base_url}/attributes/{self.web_id}",
            "Value": f"{base_url}/streams/{self.web_id}/value",
            "Element": f"{base_url}/{'eventframes' if isinstance(self.element, EventFrame) else 'elements'}/{self.element.web_id}",
        }
        if self.point:
            links["Point"] = f"{base_url}/points/{self.point.web_id}"
            links["RecordedData"] = f"{base_url}/streams/{self.web_id}/recorded"
        return {
            "WebId": self.web_id,
            "Id": str(self.id),
            "Name": self.name,
            "Description": "",
            "Path": self.path,
            "Type": self.type,
            "TypeQualifier": "",
            "DefaultUnitsName": self.units,
            "DisplayDigits": -5,
            "DataReferencePlugIn": self.data_reference,
            "ConfigString": self.config_string,
            "IsConfigurationItem": self.is_configuration_item,
            "IsExcluded": False,
            "IsHidden": False,
            "IsManualDataEntry": False,
            "HasChildren": False,
            "CategoryNames": [],
            "Step": False,
            "TraitName": "",
            "Links": links,
        }


@dataclass(eq=False)
class Element:
    web_id: str
    id: uuid.UUID
    name: str
    path: str
    template: str
    categories: tuple[str, ...]
    description: str
    parent: "Element | None"
    children: list["Element"] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    def to_json(self, base_url: str) -> dict:
        return {
            "WebId": self.web_id,
            "Id": str(self.id),
            "Name": self.name,
            "Description": self.description,
            "Path": self.path,
            "TemplateName": self.template,
            "HasChildren": bool(self.children),
            "CategoryNames": list(self.categories),
            "ExtendedProperties": {},
            "Links": {
                "Self": f"{base_url}/elements/{self.web_id}",
                "Elements": f"{base_url}/elements/{self.web_id}/elements",
                "Attributes": f"{base_url}/elements/{self.web_id}/attributes",
                "Database": f"{base_url}/assetdatabases/{Plant.database_web_id()}",
                **({"Parent": f"{base_url}/elements/{self.parent.web_id}"} if self.parent else {}),
                **({"Template": f"{base_url}/elementtemplates/{Plant.template_web_id(self.template)}"}
                   if self.template else {}),
                "Value": f"{base_url}/streamsets/{self.web_id}/value",
                "EventFrames": f"{base_url}/elements/{self.web_id}/eventframes",
            },
        }


@dataclass(eq=False)
class EventFrame:
    web_id: str
    id: uuid.UUID
    name: str
    template: str
    start_ticks: int
    planned_end_ticks: int
    severity: str
    primary_element: Element
    referenced_elements: list[Element]
    acknowledged_after_ticks: int | None
    annotated: bool
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"\\\\{ASSET_SERVER_NAME}\\{ASSET_DATABASE_NAME}\\EventFrames[{self.name}]"


@dataclass
class Plant:
    config: PlantConfig
    points: list[Point]
    root: Element
    elements: list[Element]
    event_frames: list[EventFrame]

    # ---- identifiers of the fixed objects -------------------------------------------------
    @staticmethod
    def data_server_id() -> uuid.UUID:
        return _guid(0xD5)

    @staticmethod
    def data_server_web_id() -> str:
        return f"F1DS{_b64(Plant.data_server_id().bytes_le)}{_b64(DATA_SERVER_NAME.encode())}"

    @staticmethod
    def asset_server_id() -> uuid.UUID:
        return _guid(0xA5)

    @staticmethod
    def asset_server_web_id() -> str:
        return f"F1RS{_b64(Plant.asset_server_id().bytes_le)}{_b64(ASSET_SERVER_NAME.encode())}"

    @staticmethod
    def database_id() -> uuid.UUID:
        return _guid(0xDB)

    @staticmethod
    def database_web_id() -> str:
        path = f"{ASSET_SERVER_NAME}\\{ASSET_DATABASE_NAME}".upper()
        return f"F1RD{_b64(Plant.asset_server_id().bytes_le)}{_b64(Plant.database_id().bytes_le)}{_b64(path.encode())}"

    @staticmethod
    def template_web_id(name: str) -> str:
        return _web_id("ET", Plant.database_id(), _guid(0xE7, sum(name.encode())), f"ElementTemplates[{name}]")

    # ---- lookups --------------------------------------------------------------------------
    @cached_property
    def by_web_id(self) -> dict[str, object]:
        index: dict[str, object] = {p.web_id: p for p in self.points}
        for element in self.elements:
            index[element.web_id] = element
            index.update({a.web_id: a for a in element.attributes})
        for frame in self.event_frames:
            index[frame.web_id] = frame
            index.update({a.web_id: a for a in frame.attributes})
        return index

    @cached_property
    def points_by_path(self) -> dict[str, Point]:
        return {p.path.upper(): p for p in self.points}

    @cached_property
    def element_templates(self) -> list[dict]:
        """Element and event frame templates as (name, instance type, categories, attributes)."""
        templates = [
            {"Name": "Enterprise", "InstanceType": "Element", "Categories": [], "Attributes": []},
            {"Name": "Site", "InstanceType": "Element", "Categories": [], "Attributes": ["Location"]},
            {"Name": "Area", "InstanceType": "Element", "Categories": [], "Attributes": []},
            {"Name": "Unit", "InstanceType": "Element", "Categories": ["Production"], "Attributes": ["Capacity"]},
        ]
        for kind in EQUIPMENT_KINDS:
            templates.append({"Name": kind.template, "InstanceType": "Element",
                              "Categories": list(kind.categories),
                              "Attributes": ["Manufacturer", *[_attribute_name(m) for m in kind.measurements]]})
        for name, (_, _, attributes) in EVENT_FRAME_TEMPLATES.items():
            templates.append({"Name": name, "InstanceType": "EventFrame", "Categories": [],
                              "Attributes": list(attributes)})
        return templates


def _attribute_name(measurement_code: str) -> str:
    return {
        "TEMP": "Temperature", "PRES": "Pressure", "FLOW": "Flow", "LEVEL": "Level", "SPEED": "Speed",
        "POWER": "Power", "VIB": "Vibration", "STATUS": "Status", "MODE": "Mode", "VALVE": "Valve",
        "BATCH": "Batch", "LASTCAL": "Last Calibration",
    }[measurement_code]


def build_plant(config: PlantConfig) -> Plant:
    """Build the whole plant model from its configuration (deterministic in ``config.seed``)."""
    db_id = Plant.database_id()
    db_path = f"\\\\{ASSET_SERVER_NAME}\\{ASSET_DATABASE_NAME}"
    elements: list[Element] = []

    def new_element(name: str, template: str, categories: tuple[str, ...], parent: Element | None,
                    description: str = "") -> Element:
        path = f"{parent.path if parent else db_path}\\{name}"
        element_id = _guid(config.seed, 0xE1, len(elements))
        element = Element(_web_id("Em", db_id, element_id, path), element_id, name, path, template,
                          categories, description, parent)
        if parent:
            parent.children.append(element)
        elements.append(element)
        return element

    def add_attribute(owner: Element | EventFrame, name: str, type_: str, units: str = "",
                      point: Point | None = None, static_value: object = None) -> Attribute:
        owner_path = owner.path
        path = f"{owner_path}|{name}"
        attribute_id = _guid(config.seed, 0xA7, hash_text(path))
        attribute = Attribute(_web_id("Ab", db_id, attribute_id, path), attribute_id, name, path, owner,
                              type_, units, point, static_value, is_configuration_item=point is None)
        owner.attributes.append(attribute)
        return attribute

    # Hierarchy: Enterprise / Site / Area / Unit / equipment. The numbers of sites, areas and units
    # grow with the element count so that a large plant stays several levels deep.
    rng = random.Random(key(config.seed, 0x5EED))
    root = new_element("Enterprise", "Enterprise", (), None, "Simulated enterprise")
    budget = max(config.elements, 8)
    sites = max(1, min(8, budget // 2000 + 1))
    areas_per_site = max(1, min(6, budget // (sites * 300) + 1))
    units_per_area = max(1, min(10, budget // (sites * areas_per_site * 40) + 1))
    units: list[Element] = []
    for s in range(sites):
        site = new_element(f"Site{s + 1:02d}", "Site", (), root, f"Production site {s + 1}")
        add_attribute(site, "Location", "String", static_value=f"Region {s % 3 + 1}")
        for a in range(areas_per_site):
            area = new_element(f"Area{a + 1:02d}", "Area", (), site)
            for u in range(units_per_area):
                unit = new_element(f"Unit{u + 1:02d}", "Unit", ("Production",), area)
                add_attribute(unit, "Capacity", "Double", "t/h", static_value=float(50 + 10 * u))
                units.append(unit)
    equipment: list[Element] = []
    while len(elements) < config.elements:
        n = len(equipment)
        kind = EQUIPMENT_KINDS[n % len(EQUIPMENT_KINDS)]
        unit = units[n % len(units)]
        element = new_element(f"{kind.code}-{n + 1:05d}", kind.template, kind.categories, unit,
                              f"{kind.template} {n + 1}")
        add_attribute(element, "Manufacturer", "String", static_value=rng.choice(["Sulzer", "KSB", "Atlas", "Alfa"]))
        equipment.append(element)

    # PI points: tag i belongs to equipment i mod E; its measurement cycles through the kind's list.
    points: list[Point] = []
    fixed_interval = config.sampling_seconds
    for i in range(config.tags):
        slot, index = divmod(i, max(len(equipment), 1))  # tag i is slot `slot` of equipment `index`
        owner = equipment[index] if equipment else None
        kind = EQUIPMENT_KINDS[index % len(EQUIPMENT_KINDS)]
        # Rotate the first measurement by equipment so that a plant with one tag per equipment
        # still has every point type; an equipment's slots take its measurements in turn, so that
        # (measurement, repeat) and with it the point name is unique (PI names are).
        code = kind.measurements[(slot + index // len(EQUIPMENT_KINDS)) % len(kind.measurements)]
        repeat = slot // len(kind.measurements)
        prefix = (owner.path.split("\\")[-4:] if owner else ["Site01", "Area01", "Unit01", f"X-{i:05d}"])
        site, area, unit, equip = prefix
        name = f"{site[-2:]}{area[-2:]}{unit[-2:]}.{equip}.{code}{repeat + 1 if repeat else ''}"
        tag_key = key(config.seed, 0x7A6, i)
        r = random.Random(tag_key)
        interval_s = fixed_interval or r.choices(SAMPLING_SECONDS, SAMPLING_WEIGHTS)[0]
        interval = round(interval_s * TICKS_PER_SECOND)
        measurement = _MEASUREMENTS[code]
        point = Point(
            index=i, point_id=i + 1, name=name,
            web_id=_web_id("DP", Plant.data_server_id(), i + 1, f"{DATA_SERVER_NAME}\\{name}"),
            path=f"\\\\{DATA_SERVER_NAME}\\{name}", measurement=measurement,
            descriptor=f"{_attribute_name(code)} of {equip}",
            key=tag_key, interval_ticks=interval,
            phase_ticks=r.randrange(interval) if not config.aligned_timestamps else 0,
            irregular=(not config.aligned_timestamps) and r.random() < config.irregular_share,
            late=r.random() < config.late_tag_share,
            period_seconds=r.uniform(3_600, 7 * 86_400), noise=measurement.amplitude * r.uniform(0.01, 0.1),
        )
        points.append(point)
        if owner:
            add_attribute(owner, _attribute_name(code) + (f" {repeat + 1}" if repeat else ""),
                          _af_type(measurement), measurement.units, point=point)

    event_frames = _build_event_frames(config, equipment or [root], add_attribute, db_id)
    return Plant(config, points, root, elements, event_frames)


def _af_type(measurement: Measurement) -> str:
    return {"Float32": "Single", "Float64": "Double", "Int32": "Int32", "Digital": "EnumerationValue",
            "String": "String", "Timestamp": "DateTime"}[measurement.point_type]


def hash_text(text: str) -> int:
    """A stable integer for a string (Python's hash() is salted per process)."""
    return int.from_bytes(uuid.uuid5(uuid.NAMESPACE_URL, text).bytes[:8], "little")


def _build_event_frames(config: PlantConfig, equipment: list[Element], add_attribute, db_id) -> list[EventFrame]:
    frames: list[EventFrame] = []
    origin = config.origin_ticks
    window = parse_duration(config.event_frame_window)
    names = list(EVENT_FRAME_TEMPLATES)
    for i in range(config.event_frames):
        r = random.Random(key(config.seed, 0xEF, i))
        template = names[i % len(names)]
        mean_duration, severities, attribute_names = EVENT_FRAME_TEMPLATES[template]
        # Frames start over the window before the origin and a little after it, so that at the
        # origin some are closed, some in progress and some not yet started.
        start = origin - window + r.randrange(window + window // 10)
        duration = round(r.uniform(0.2, 1.8) * mean_duration * TICKS_PER_SECOND)
        primary = equipment[r.randrange(len(equipment))]
        others = [equipment[r.randrange(len(equipment))] for _ in range(r.randrange(3))]
        referenced = [primary] + [e for e in dict.fromkeys(others) if e is not primary]
        frame_id = _guid(config.seed, 0xEF, i)
        name = f"{template} {primary.name} {i + 1:05d}"
        frame = EventFrame(
            web_id=_web_id("Fm", db_id, frame_id, f"EventFrames[{name}]"), id=frame_id, name=name,
            template=template, start_ticks=start, planned_end_ticks=start + duration,
            severity=r.choice(severities), primary_element=primary, referenced_elements=referenced,
            acknowledged_after_ticks=(start + r.randrange(max(duration, 1))) if template == "Alarm" and r.random() < 0.7 else None,
            annotated=r.random() < 0.1,
        )
        for attribute_name in attribute_names:
            value, type_, units = _frame_attribute_value(attribute_name, r, i)
            add_attribute(frame, attribute_name, type_, units, static_value=value)
        frames.append(frame)
    return frames


def _frame_attribute_value(name: str, r: random.Random, i: int) -> tuple[object, str, str]:
    if name == "Reason":
        return r.choice(["Planned stop", "Trip", "No feed", "Power loss"]), "String", ""
    if name == "Lost Production":
        return round(r.uniform(1, 500), 2), "Double", "t"
    if name == "Product":
        return r.choice(["Grade A", "Grade B", "Grade C"]), "String", ""
    if name == "Batch ID":
        return f"B-{i + 1:06d}", "String", ""
    if name == "Quantity":
        return round(r.uniform(10, 90), 3), "Double", "t"
    if name == "Limit":
        return round(r.uniform(50, 150), 1), "Double", ""
    if name == "Peak Value":
        return round(r.uniform(150, 250), 2), "Double", ""
    if name == "Work Order":
        return f"WO-{r.randrange(10**6):06d}", "String", ""
    return r.choice(["A. Jansen", "M. Okafor", "L. Chen"]), "String", ""
