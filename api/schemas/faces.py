"""Face search and person models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.text import FreeText, one_line

PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                       AfterValidator(one_line)]
"""A person's name: surrounding whitespace stripped, then not empty; no control or bidi-override character (a line
break or U+202E would fake or reverse the name on alert cards: 422)."""


class FaceHitOut(BaseModel):
    event_id: str
    similarity: float
    camera_id: str
    frame_time: float
    quality: float | None = None
    crop_url: str | None = None
    snapshot_url: str | None = None


class SearchedFaceOut(BaseModel):
    """The face of the uploaded photo that was searched for."""

    index: int = Field(ge=0, description="Its place among the photo's usable faces, largest first (0 = largest); "
                                         "send it as `face_index` to search this face again.")
    box: list[float] = Field(min_length=4, max_length=4,
                             description="Its box in the photo's pixels: [x1, y1, x2, y2].")
    det_score: float = Field(description="The face detector's confidence.")


class FaceSearchOut(BaseModel):
    threshold: float
    total: int = Field(description="Hits in this page (not the number of all matches: see `has_more`).")
    offset: int = Field(ge=0, description="Rank of the first hit of this page (0 = best).")
    limit: int = Field(ge=1, description="Most hits a page holds.")
    has_more: bool = Field(description="More matching faces rank after this page: ask again with "
                                                      "`offset` = `next_offset`.")
    next_offset: int | None = Field(default=None, description="The `offset` of the next page; null when none.")
    faces_found: int = Field(ge=1, description="Usable faces found in the photo.")
    face: SearchedFaceOut = Field(description="The face searched for.")
    hits: list[FaceHitOut]


class PersonOut(BaseModel):
    id: str
    name: str
    notes: str = ""
    photos: int = Field(description="Number of enrolled face embeddings.")
    created_at: float | None = None
    updated_at: float | None = None


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PersonName | None = None
    notes: FreeText | None = Field(default=None, max_length=2000)
