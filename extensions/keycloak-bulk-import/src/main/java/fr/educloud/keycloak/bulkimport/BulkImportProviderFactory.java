package fr.educloud.keycloak.bulkimport;

import org.keycloak.Config;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProvider;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProviderFactory;

/** Registers the {@code educloud-bulk-import} admin endpoint of every realm. */
public final class BulkImportProviderFactory implements AdminRealmResourceProviderFactory {

    public static final String ID = "educloud-bulk-import";
    private static final BulkImportProvider PROVIDER = new BulkImportProvider();

    @Override
    public AdminRealmResourceProvider create(KeycloakSession session) {
        return PROVIDER;
    }

    @Override
    public void init(Config.Scope config) {}

    @Override
    public void postInit(KeycloakSessionFactory factory) {}

    @Override
    public void close() {}

    @Override
    public String getId() {
        return ID;
    }
}
