"""Response models: they document the JSON the OGC API routes return (OpenAPI, schemathesis)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Collection",
    "Collections",
    "Conformance",
    "Feature",
    "FeatureCollection",
    "LandingPage",
    "Link",
]


class Link(BaseModel):
    """A link with its relation and media type."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(BaseModel):
    """The OGC API landing page."""

    title: str
    description: str
    links: list[Link]


class Conformance(BaseModel):
    """The conformance classes the API implements."""

    conformsTo: list[str]  # noqa: N815  (the standard's name)


class Collection(BaseModel):
    """One collection: its extents, CRSs and links."""

    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    description: str
    itemType: str  # noqa: N815
    crs: list[str]
    storageCrs: str  # noqa: N815
    extent: dict[str, Any] | None = None
    links: list[Link]


class Collections(BaseModel):
    """The collections of the API."""

    links: list[Link]
    collections: list[Collection]


class Feature(BaseModel):
    """A GeoJSON feature."""

    model_config = ConfigDict(extra="allow")

    type: Literal["Feature"]
    id: str | int
    properties: dict[str, Any] | None
    geometry: dict[str, Any] | None
    links: list[Link] = Field(default_factory=list)


class FeatureCollection(BaseModel):
    """A GeoJSON feature collection, one page of a query."""

    model_config = ConfigDict(extra="allow")

    type: Literal["FeatureCollection"]
    features: list[Feature]
    links: list[Link]
    numberMatched: int  # noqa: N815
    numberReturned: int  # noqa: N815
    timeStamp: str  # noqa: N815
