"""Jobs and tasks API: thin ViewSets over ``jobs.selectors`` (reads, scoping) and ``jobs.services`` (writes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from audit.selectors import audit_history_of_job
from audit.serializers import AuditEntryReadSerializer
from jobops.api import ScopedViewSet
from jobops.roles import ADMIN, ALL_ROLES, SALES_AGENT, TECHNICIAN

from . import etags, selectors, services
from .filters import JobFilter, TaskFilter
from .models import Job
from .serializers import (
    JobDetailSerializer,
    JobReadSerializer,
    JobTaskCreateSerializer,
    JobTaskReadSerializer,
    JobTaskReorderSerializer,
    JobTaskUpdateSerializer,
    JobWriteSerializer,
)

EDITORS = frozenset({ADMIN, SALES_AGENT})
WORKERS = frozenset({ADMIN, TECHNICIAN})
NO_BODY = OpenApiResponse(description="No content.")


@extend_schema_view(
    list=extend_schema(summary="List jobs in your scope", tags=["jobs"]),
    retrieve=extend_schema(summary="Get a job with its ordered tasks", tags=["jobs"]),
    create=extend_schema(summary="Create a job (admin, sales agent)", tags=["jobs"]),
    update=extend_schema(summary="Replace a job's editable fields", tags=["jobs"]),
    partial_update=extend_schema(summary="Change a job's editable fields", tags=["jobs"]),
    destroy=extend_schema(summary="Delete a job and its tasks (admin)", tags=["jobs"], responses={204: NO_BODY}),
)
class JobViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """Jobs. Admins see all, technicians the jobs assigned to them, sales agents the jobs they created."""

    selector = selectors.job_scope
    filterset_class = JobFilter
    read_serializer_class = JobReadSerializer
    write_serializer_classes = {
        "create": JobWriteSerializer,
        "update": JobWriteSerializer,
        "partial_update": JobWriteSerializer,
    }
    allowed_roles = {
        "list": ALL_ROLES,
        "retrieve": ALL_ROLES,
        "create": EDITORS,
        "update": EDITORS,
        "partial_update": EDITORS,
        "destroy": frozenset({ADMIN}),
        "cancel": EDITORS,
        "complete": WORKERS,
        "reopen": frozenset({ADMIN}),
        "tasks": ALL_ROLES,
        "add_task": EDITORS,
        "reorder_tasks": EDITORS,
        "history": ALL_ROLES,
    }

    etag_actions = frozenset({"list", "retrieve", "tasks"})
    precondition_actions = frozenset(
        {"update", "partial_update", "destroy", "cancel", "complete", "reopen", "add_task", "reorder_tasks"}
    )

    def get_serializer_class(self) -> Any:
        if self.action == "list":
            return JobReadSerializer
        return self.write_serializer_classes.get(self.action, JobDetailSerializer)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        jobs = self.filter_queryset(self.get_queryset())
        offset, limit = self.page_window()
        return self.conditional(
            etags.jobs_page_etag(jobs, offset=offset, limit=limit, extra=self.etag_extra(url=True)),
            lambda: self.rendered_page(jobs, JobReadSerializer),
        )

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return self.conditional(self.job_etag(), lambda: self.rendered_object(JobDetailSerializer))

    def job_etag(self, job_id: Any = None, *, lock: bool = False) -> str | None:
        """The ETag of the job ``job_id`` (default: the URL's) in the caller's scope: its detail's and its task
        list's. ``lock``: under the job's lock (for ``If-Match``)."""
        job_id = self.kwargs[self.lookup_url_kwarg or self.lookup_field] if job_id is None else job_id
        return etags.job_etag(self.get_queryset(), job_id, extra=self.etag_extra(), lock=lock)

    def job_precondition(self, job: Job) -> Any:
        """``If-Match`` against the job's ETag, read under its lock, around the write in the ``with`` block."""
        return self.precondition(lambda: self.job_etag(job.pk, lock=True))

    def render_job(self, job: Job, *, status_code: int = status.HTTP_200_OK) -> Any:
        """The job after a write, re-read through the caller's scope and rendered as the detail, with its ETag."""
        return self.conditional(
            self.job_etag(job.pk),
            lambda: self.rendered_object(JobDetailSerializer, pk=job.pk, status_code=status_code),
        )

    def render_tasks(self, job_id: Any = None) -> Any:
        """The ordered tasks of the job ``job_id`` (default: the URL's) in the caller's scope; 404 outside it."""
        return self.conditional(
            self.job_etag(job_id), lambda: self.rendered_object(JobTaskReadSerializer, relation="tasks", pk=job_id)
        )

    @extend_schema(responses={201: JobDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validate_input(JobWriteSerializer)
        job = services.job_create(actor=request_user(request), data=data)
        return self.render_job(job, status_code=status.HTTP_201_CREATED)

    @extend_schema(responses={200: JobDetailSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        job = self.get_object()
        data = self.validate_input(JobWriteSerializer, partial=partial)
        with self.job_precondition(job):
            job = services.job_update(actor=request_user(request), job_id=job.pk, data=data)
        return self.render_job(job)

    @extend_schema(responses={200: JobDetailSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        with self.job_precondition(job):
            services.job_delete(actor=request_user(request), job_id=job.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel a job (admin, its creator)", tags=["jobs"], request=None, responses={200: JobDetailSerializer}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        with self.job_precondition(job):
            job = services.job_cancel(actor=request_user(request), job_id=job.pk)
        return self.render_job(job)

    @extend_schema(
        summary="Complete a job whose tasks are all completed (admin, assigned technician)",
        tags=["jobs"],
        request=None,
        responses={200: JobDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        with self.job_precondition(job):
            job = services.job_complete(actor=request_user(request), job_id=job.pk)
        return self.render_job(job)

    @extend_schema(
        summary="Reopen a completed or cancelled job (admin)",
        tags=["jobs"],
        request=None,
        responses={200: JobDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        with self.job_precondition(job):
            job = services.job_reopen(actor=request_user(request), job_id=job.pk)
        return self.render_job(job)

    @extend_schema(
        summary="The job's tasks, in order (not paginated)",
        tags=["tasks"],
        responses={200: JobTaskReadSerializer(many=True)},
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="tasks", pagination_class=None, filterset_class=None)
    def tasks(self, request: Request, pk: Any = None) -> Response:
        return self.render_tasks()

    @extend_schema(
        summary="Add a task to the job (admin, the job's creator)",
        tags=["tasks"],
        request=JobTaskCreateSerializer,
        responses={201: JobTaskReadSerializer},
        filters=False,
    )
    @tasks.mapping.post
    def add_task(self, request: Request, pk: Any = None) -> Any:
        job = self.get_object()
        data = self.validate_input(JobTaskCreateSerializer)
        with self.job_precondition(job):
            task = services.task_add(actor=request_user(request), job_id=job.pk, data=data)
        # The new task, re-read through the task scope (the one scope of jobs, applied to tasks), with its ETag.
        tasks = selectors.task_scope(user=request.user)
        return self.conditional(
            etags.task_etag(tasks, task.pk, extra=self.etag_extra()),
            lambda: self.rendered_object(
                JobTaskReadSerializer, queryset=tasks, pk=task.pk, status_code=status.HTTP_201_CREATED
            ),
        )

    @extend_schema(
        summary="Reorder the job's tasks (admin, the job's creator)",
        tags=["tasks"],
        request=JobTaskReorderSerializer,
        responses={200: JobTaskReadSerializer(many=True)},
        filters=False,
    )
    @action(detail=True, methods=["post"], url_path="tasks/reorder", pagination_class=None, filterset_class=None)
    def reorder_tasks(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        data = self.validate_input(JobTaskReorderSerializer)
        with self.job_precondition(job):
            services.tasks_reorder(actor=request_user(request), job_id=job.pk, task_ids=data["order"])
        return self.render_tasks(job.pk)

    @extend_schema(
        summary="A job's history: its audit entries and its tasks', newest first",
        description=(
            "Admins, the job's creator (sales agent) and its assigned technician; a job outside the caller's scope "
            "is a 404."
        ),
        tags=["jobs"],
        parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The job's id.")],
        responses={200: AuditEntryReadSerializer(many=True)},
        filters=False,
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def history(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()  # the job's scope decides; the audit trail holds plain ids
        page = self.paginate_queryset(audit_history_of_job(job_id=job.pk))
        data = AuditEntryReadSerializer(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)


@extend_schema_view(
    list=extend_schema(summary="List tasks in your scope", tags=["tasks"]),
    retrieve=extend_schema(summary="Get a task", tags=["tasks"]),
    update=extend_schema(summary="Replace a task's editable fields (admin, the job's creator)", tags=["tasks"]),
    partial_update=extend_schema(summary="Change a task (admin, the job's creator)", tags=["tasks"]),
    destroy=extend_schema(summary="Delete a task (admin, the job's creator)", tags=["tasks"], responses={204: NO_BODY}),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Tasks across jobs, scoped like their jobs."""

    selector = selectors.task_scope
    filterset_class = TaskFilter
    read_serializer_class = JobTaskReadSerializer
    write_serializer_classes = {"update": JobTaskUpdateSerializer, "partial_update": JobTaskUpdateSerializer}
    allowed_roles = {
        "list": ALL_ROLES,
        "retrieve": ALL_ROLES,
        "update": EDITORS,
        "partial_update": EDITORS,
        "destroy": EDITORS,
        "start": WORKERS,
        "complete": WORKERS,
        "reopen": WORKERS,
    }
    etag_actions = frozenset({"list", "retrieve"})
    precondition_actions = frozenset({"update", "partial_update", "destroy", "start", "complete", "reopen"})

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        tasks = self.filter_queryset(self.get_queryset())
        offset, limit = self.page_window()
        return self.conditional(
            etags.tasks_page_etag(tasks, offset=offset, limit=limit, extra=self.etag_extra(url=True)),
            lambda: self.rendered_page(tasks, JobTaskReadSerializer),
        )

    def task_etag(self, task_id: Any = None, *, lock: bool = False) -> str | None:
        task_id = self.kwargs[self.lookup_url_kwarg or self.lookup_field] if task_id is None else task_id
        return etags.task_etag(self.get_queryset(), task_id, extra=self.etag_extra(), lock=lock)

    def task_precondition(self, task: Any) -> Any:
        """``If-Match`` against the task's ETag, read under its job's lock, around the write in the ``with``."""
        return self.precondition(lambda: self.task_etag(task.pk, lock=True))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return self.conditional(self.task_etag(), lambda: self.rendered_object(JobTaskReadSerializer))

    def render(self, instance: Any, *, status_code: int = status.HTTP_200_OK) -> Any:
        return self.conditional(
            self.task_etag(instance.pk),
            lambda: self.rendered_object(JobTaskReadSerializer, pk=instance.pk, status_code=status_code),
        )

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        task = self.get_object()
        data = self.validate_input(JobTaskUpdateSerializer, partial=partial)
        with self.task_precondition(task):
            task = services.task_update(actor=request_user(request), task_id=task.pk, data=data)
        return self.render(task)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        with self.task_precondition(task):
            services.task_delete(actor=request_user(request), task_id=task.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Start the task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def start(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        with self.task_precondition(task):
            task = services.task_start(actor=request_user(request), task_id=task.pk)
        return self.render(task)

    @extend_schema(summary="Complete the task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def complete(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        with self.task_precondition(task):
            task = services.task_complete(actor=request_user(request), task_id=task.pk)
        return self.render(task)

    @extend_schema(summary="Reopen the last completed task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def reopen(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        with self.task_precondition(task):
            task = services.task_reopen(actor=request_user(request), task_id=task.pk)
        return self.render(task)
