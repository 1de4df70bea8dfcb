"""Jobs and tasks API: thin ViewSets over ``jobs.selectors`` (reads, scoping) and ``jobs.services`` (writes)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import ADMIN, ALL_ROLES, SALES_AGENT, TECHNICIAN
from jobops.api import ScopedViewSet

from . import pgjson, rows, selectors, services
from .filters import JobFilter, TaskFilter
from .models import Job, JobTask
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


def database_rendered_page(view: ScopedViewSet, render: Any) -> Response:
    """A list page that ``render`` (``jobs.pgjson.job_page`` / ``task_page``) counts and renders in one statement.

    The scoped queryset and its filters are the view's own, and they are applied before the page parameters are
    read, so bad input gets the same 400 as through ``paginate_queryset``.
    """
    queryset = view.filter_queryset(view.get_queryset())
    number, size = view.paginator.requested_page(view.request)
    count, results = render(queryset, offset=(number - 1) * size, limit=size)
    return view.paginator.counted_response(view.request, number=number, size=size, count=count, results=results)


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

    selector = selectors.job_list_for
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
    }

    def get_queryset(self) -> Any:
        # Same scope for every action; only the shape of what is fetched differs.
        if self.action == "list":
            if pgjson.enabled(Job):
                return selectors.job_page_for(user=self.request.user)  # pgjson counts the tasks itself
            return super().get_queryset()
        if self.action == "retrieve":
            return selectors.job_detail_for(user=self.request.user)
        return selectors.job_scope_for(user=self.request.user)

    def get_serializer_class(self) -> Any:
        if self.action == "list":
            return JobReadSerializer
        return self.write_serializer_classes.get(self.action, JobDetailSerializer)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The hottest endpoint. Both renderers give JobReadSerializer's output (tested): on PostgreSQL the database
        # renders the page and counts the list in one statement; elsewhere values() rows go through jobs.rows.
        if pgjson.enabled(Job):
            return database_rendered_page(self, pgjson.job_page)
        queryset = self.filter_queryset(self.get_queryset()).values(*rows.JOB_LIST_VALUES)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(rows.job_rows(page))

    def one_job(self) -> Any:
        """The job named in the URL within the caller's scope, as a queryset of at most one row, for ``jobs.pgjson``.

        The same 404s as ``get_object()``: an id that is not a number or is out of range, or one outside the scope.
        No object-permission check is skipped: ``retrieve`` and ``tasks`` are open to every role that may see the
        job (``HasActionRole`` has already checked the role).
        """
        try:
            return selectors.job_scope_for(user=self.request.user).filter(pk=self.kwargs["pk"])
        except (TypeError, ValueError, ValidationError):
            raise Http404 from None  # as DRF's get_object_or_404: "Not found."

    def database_rendered_job(self, render: Any) -> Response:
        """``render`` (``jobs.pgjson.job_detail`` or ``job_tasks``) applied to ``one_job()``; 404 without a job."""
        body = render(self.one_job())
        if body is None:
            raise Http404("No Job matches the given query.")
        return Response(body)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if pgjson.enabled(Job):
            return self.database_rendered_job(pgjson.job_detail)  # the same body as below (tested equal)
        return super().retrieve(request, *args, **kwargs)

    def render_job(self, job: Any, *, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.job_detail_for(user=self.request.user).get(pk=job.pk)
        return Response(JobDetailSerializer(fresh, context=self.get_serializer_context()).data, status=status_code)

    @extend_schema(responses={201: JobDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validate_input(JobWriteSerializer)
        job = services.job_create(actor=request.user, data=data)
        return self.render_job(job, status_code=status.HTTP_201_CREATED)

    @extend_schema(responses={200: JobDetailSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        job = self.get_object()
        data = self.validate_input(JobWriteSerializer, partial=partial)
        job = services.job_update(actor=request.user, job_id=job.pk, data=data)
        return self.render_job(job)

    @extend_schema(responses={200: JobDetailSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        services.job_delete(actor=request.user, job_id=job.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel a job (admin, its creator)", tags=["jobs"], request=None, responses={200: JobDetailSerializer}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        return self.render_job(services.job_cancel(actor=request.user, job_id=job.pk))

    @extend_schema(
        summary="Complete a job whose tasks are all completed (admin, assigned technician)",
        tags=["jobs"],
        request=None,
        responses={200: JobDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        return self.render_job(services.job_complete(actor=request.user, job_id=job.pk))

    @extend_schema(
        summary="Reopen a completed or cancelled job (admin)",
        tags=["jobs"],
        request=None,
        responses={200: JobDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        return self.render_job(services.job_reopen(actor=request.user, job_id=job.pk))

    @extend_schema(
        summary="The job's tasks, in order (not paginated)",
        tags=["tasks"],
        responses={200: JobTaskReadSerializer(many=True)},
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="tasks", pagination_class=None, filterset_class=None)
    def tasks(self, request: Request, pk: Any = None) -> Response:
        if pgjson.enabled(Job):
            return self.database_rendered_job(pgjson.job_tasks)  # the same body as below (tested equal)
        job = self.get_object()
        tasks = selectors.job_tasks_for(job=job)
        return Response(JobTaskReadSerializer(tasks, many=True, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Add a task to the job (admin, the job's creator)",
        tags=["tasks"],
        request=JobTaskCreateSerializer,
        responses={201: JobTaskReadSerializer},
        filters=False,
    )
    @tasks.mapping.post
    def add_task(self, request: Request, pk: Any = None) -> Response:
        job = self.get_object()
        data = self.validate_input(JobTaskCreateSerializer)
        task = services.task_add(actor=request.user, job_id=job.pk, data=data)
        fresh = selectors.task_scope_for(user=request.user).get(pk=task.pk)
        return Response(
            JobTaskReadSerializer(fresh, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
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
        services.tasks_reorder(actor=request.user, job_id=job.pk, task_ids=data["order"])
        tasks = selectors.job_tasks_for(job=job)
        return Response(JobTaskReadSerializer(tasks, many=True, context=self.get_serializer_context()).data)


@extend_schema_view(
    list=extend_schema(summary="List tasks in your scope", tags=["tasks"]),
    retrieve=extend_schema(summary="Get a task", tags=["tasks"]),
    update=extend_schema(summary="Replace a task's editable fields (admin, the job's creator)", tags=["tasks"]),
    partial_update=extend_schema(summary="Change a task (admin, the job's creator)", tags=["tasks"]),
    destroy=extend_schema(summary="Delete a task (admin, the job's creator)", tags=["tasks"], responses={204: NO_BODY}),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Tasks across jobs, scoped like their jobs."""

    selector = selectors.task_scope_for
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

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if pgjson.enabled(JobTask):
            return database_rendered_page(self, pgjson.task_page)  # the same page as below (tested equal)
        return super().list(request, *args, **kwargs)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        task = self.get_object()
        data = self.validate_input(JobTaskUpdateSerializer, partial=partial)
        return self.render(services.task_update(actor=request.user, task_id=task.pk, data=data))

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        services.task_delete(actor=request.user, task_id=task.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Start the task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def start(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        return self.render(services.task_start(actor=request.user, task_id=task.pk))

    @extend_schema(summary="Complete the task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def complete(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        return self.render(services.task_complete(actor=request.user, task_id=task.pk))

    @extend_schema(summary="Reopen the last completed task (admin, assigned technician)", request=None, tags=["tasks"])
    @action(detail=True, methods=["post"], filterset_class=None)
    def reopen(self, request: Request, pk: Any = None) -> Response:
        task = self.get_object()
        return self.render(services.task_reopen(actor=request.user, task_id=task.pk))
