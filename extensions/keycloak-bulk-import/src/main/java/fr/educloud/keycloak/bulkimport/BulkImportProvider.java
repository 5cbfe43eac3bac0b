package fr.educloud.keycloak.bulkimport;

import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.services.resources.admin.AdminEventBuilder;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProvider;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;

/** Serves {@link BulkImportResource} under the realm's admin API. */
public final class BulkImportProvider implements AdminRealmResourceProvider {

    @Override
    public Object getResource(
            KeycloakSession session,
            RealmModel realm,
            AdminPermissionEvaluator auth,
            AdminEventBuilder adminEvent) {
        return new BulkImportResource(session, realm, auth, adminEvent);
    }

    @Override
    public void close() {}
}
