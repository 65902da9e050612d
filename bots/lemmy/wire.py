"""The Lemmy API v3 (0.19) response shapes the adapter reads, from ``lemmy-js-client@0.19.9``.

Only the fields we use are declared; the rest of each object is ignored, so a newer server that
adds fields does not break the bot.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    """Base: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Person(Wire):
    """``Person``: a user account, local or remote."""

    id: int
    name: str
    display_name: str | None = None
    actor_id: str = ""
    local: bool = True
    bot_account: bool = False


class Community(Wire):
    """``Community``."""

    id: int
    name: str
    title: str = ""
    nsfw: bool = False
    actor_id: str = ""
    local: bool = True


class Post(Wire):
    """``Post``."""

    id: int
    name: str
    body: str | None = None
    url: str | None = None
    creator_id: int
    community_id: int
    nsfw: bool = False
    ap_id: str = ""


class Comment(Wire):
    """``Comment``; ``path`` is ``0.<ancestor ids>.<own id>``."""

    id: int
    creator_id: int
    post_id: int
    content: str
    path: str = ""
    deleted: bool = False
    removed: bool = False
    ap_id: str = ""

    @property
    def parent_id(self) -> int | None:
        """The id of the comment this one answers, or ``None`` for a top-level comment."""
        parts = self.path.split(".")
        return int(parts[-2]) if len(parts) > 2 else None


class CommentView(Wire):
    """``CommentView``: a comment with its author, post and community."""

    comment: Comment
    creator: Person
    post: Post
    community: Community


class PersonMention(Wire):
    """``PersonMention``: the notification row of a mention."""

    id: int
    recipient_id: int
    comment_id: int
    read: bool = False


class PersonMentionView(CommentView):
    """``PersonMentionView``: a comment that mentions the bot."""

    person_mention: PersonMention


class CommentReply(Wire):
    """``CommentReply``: the notification row of a reply to one of the bot's comments or posts."""

    id: int
    recipient_id: int
    comment_id: int
    read: bool = False


class CommentReplyView(CommentView):
    """``CommentReplyView``: a comment that answers the bot."""

    comment_reply: CommentReply


class LoginResponse(Wire):
    """``LoginResponse``: ``jwt`` is absent while registration or e-mail checks are pending."""

    jwt: str | None = None
    registration_created: bool = False
    verify_email_sent: bool = False


class GetPersonMentionsResponse(Wire):
    """``GetPersonMentionsResponse``."""

    mentions: list[PersonMentionView]


class GetRepliesResponse(Wire):
    """``GetRepliesResponse``."""

    replies: list[CommentReplyView]


class CommentResponse(Wire):
    """``CommentResponse``."""

    comment_view: CommentView


class GetCommentsResponse(Wire):
    """``GetCommentsResponse``."""

    comments: list[CommentView]


class PostView(Wire):
    """``PostView``."""

    post: Post
    creator: Person
    community: Community


class PostResponse(Wire):
    """``PostResponse``."""

    post_view: PostView


class GetPostsResponse(Wire):
    """``GetPostsResponse``."""

    posts: list[PostView]


class CommunityView(Wire):
    """``CommunityView``."""

    community: Community


class GetCommunityResponse(Wire):
    """``GetCommunityResponse``."""

    community_view: CommunityView


class VoteView(Wire):
    """``VoteView``: one vote on a comment or post; ``score`` is 1 or -1."""

    creator: Person
    score: int


class ListCommentLikesResponse(Wire):
    """``ListCommentLikesResponse``."""

    comment_likes: list[VoteView]


class UploadedFile(Wire):
    """One file of a pict-rs upload answer."""

    file: str
    delete_token: str = ""


class UploadImageResponse(Wire):
    """pict-rs ``POST /pictrs/image``: ``{"msg": "ok", "files": [{file, delete_token}]}``."""

    msg: str
    files: list[UploadedFile] = []


class NodeInfoSoftware(Wire):
    """``software`` of nodeinfo 2.0."""

    name: str
    version: str


class NodeInfo(Wire):
    """``/nodeinfo/2.0.json``, read for the server's version."""

    software: NodeInfoSoftware
