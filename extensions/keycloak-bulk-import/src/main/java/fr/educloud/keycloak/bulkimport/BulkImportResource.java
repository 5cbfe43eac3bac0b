package fr.educloud.keycloak.bulkimport;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.keycloak.connections.jpa.support.EntityManagers;
import org.keycloak.events.admin.OperationType;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.ModelDuplicateException;
import org.keycloak.models.RealmModel;
import org.keycloak.models.utils.KeycloakModelUtils;
import org.keycloak.partialimport.Action;
import org.keycloak.partialimport.PartialImportResult;
import org.keycloak.partialimport.PartialImportResults;
import org.keycloak.representations.idm.PartialImportRepresentation;
import org.keycloak.services.ErrorResponse;
import org.keycloak.services.resources.admin.AdminEventBuilder;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;
import org.keycloak.storage.DatastoreProvider;
import org.keycloak.storage.ExportImportManager;
import org.keycloak.util.JsonSerialization;

/**
 * {@code POST /admin/realms/{realm}/educloud-bulk-import/users}: Keycloak's own partial
 * import of users (and groups), run in Keycloak's JPA batch mode.
 *
 * <p>This is the code path of {@code RealmAdminResource.partialImport} (same permission,
 * same transaction, same admin events), wrapped in {@code EntityManagers.runInBatch}, the
 * mode {@code kc.sh import} runs a directory import in. In that mode Hibernate flushes at
 * commit only, and {@code UserAdapter.joinGroupImpl} skips the {@code em.flush()} it
 * otherwise makes after each group membership: with the ordinary partial import those
 * flushes, each dirty-checking every entity of the transaction, were most of Keycloak's
 * work (docs/decisions/0010-keycloak-bulk-import-extension.md).
 *
 * <p>Only what this mode is safe for is accepted: users and groups, {@code SKIP} or
 * {@code FAIL} (not {@code OVERWRITE}, which deletes before it creates and needs the
 * flushes in between).
 */
public final class BulkImportResource {

    private final KeycloakSession session;
    private final RealmModel realm;
    private final AdminPermissionEvaluator auth;
    private final AdminEventBuilder adminEvent;

    BulkImportResource(
            KeycloakSession session,
            RealmModel realm,
            AdminPermissionEvaluator auth,
            AdminEventBuilder adminEvent) {
        this.session = session;
        this.realm = realm;
        this.auth = auth;
        this.adminEvent = adminEvent;
    }

    @POST
    @Path("users")
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public Response importUsers(InputStream body) {
        // The permission partial import asks for (RealmAdminResource.partialImport).
        auth.realm().requireManageRealm();
        byte[] request;
        PartialImportRepresentation rep;
        try {
            request = body.readAllBytes();
            rep = JsonSerialization.readValue(request, PartialImportRepresentation.class);
        } catch (IOException e) {
            throw ErrorResponse.error(
                    "the body is not a PartialImportRepresentation", Response.Status.BAD_REQUEST);
        }
        String refused = refusal(rep);
        if (refused != null) {
            throw ErrorResponse.error(refused, Response.Status.BAD_REQUEST);
        }
        try {
            PartialImportResults results =
                    KeycloakModelUtils.runJobInTransactionWithResult(
                            session.getKeycloakSessionFactory(),
                            session.getContext(),
                            kcSession -> importInBatchMode(kcSession, request),
                            "educloud bulk import in realm " + realm.getName());
            return Response.ok(results).build();
        } catch (ModelDuplicateException e) {
            throw ErrorResponse.exists(e.getLocalizedMessage());
        }
    }

    static String refusal(PartialImportRepresentation rep) {
        if (rep == null) {
            return "a PartialImportRepresentation is expected";
        }
        if (rep.hasClients() || rep.hasIdps() || rep.hasRealmRoles() || rep.hasClientRoles()
                || (rep.getIdentityProviderMappers() != null
                        && !rep.getIdentityProviderMappers().isEmpty())) {
            return "only users and groups are imported here; use partialImport for the rest";
        }
        // Absent, it is FAIL (Keycloak's default); an unknown value fails to deserialize
        // (Policy.valueOf), answered 400 above.
        if (rep.getPolicy() == PartialImportRepresentation.Policy.OVERWRITE) {
            return "ifResourceExists must be SKIP or FAIL (OVERWRITE is not supported here)";
        }
        return null;
    }

    private PartialImportResults importInBatchMode(
            KeycloakSession kcSession, byte[] request) {
        RealmModel realmClone = kcSession.realms().getRealm(realm.getId());
        AdminEventBuilder events = adminEvent.clone(kcSession);
        PartialImportResults[] results = new PartialImportResults[1];
        // Batch mode on this transaction's own entity manager (false: no nested session), as
        // RealmManager.createDefaultClientScopes uses it: pending changes are flushed once
        // before, and the rest at the commit that runJobInTransactionWithResult makes.
        ExportImportManager manager =
                kcSession.getProvider(DatastoreProvider.class).getExportImportManager();
        EntityManagers.runInBatch(
                kcSession,
                () -> results[0] =
                        manager.partialImportRealm(realmClone, new ByteArrayInputStream(request)),
                false);
        // The admin events partial import fires (RealmAdminResource.fireCreatedEvent).
        for (PartialImportResult result : results[0].getResults()) {
            if (result.getAction() == Action.ADDED) {
                events.operation(OperationType.CREATE)
                        .resourcePath(result.getResourceType().getPath(), result.getId())
                        .representation(result.getRepresentation())
                        .success();
            }
        }
        return results[0];
    }
}
