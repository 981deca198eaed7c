package crypto_assets_tests.standins;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.NamespaceChange;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.StagingTableCatalog;
import org.apache.spark.sql.connector.catalog.SupportsNamespaces;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalogCapability;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.catalog.TableWritePrivilege;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.metric.CustomMetric;
import org.apache.spark.sql.delta.catalog.DeltaCatalog;
import org.apache.spark.sql.execution.datasources.v2.V2SessionCatalog;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A test stand-in for one Unity Catalog catalog: Delta tables named {@code
 * <catalog>.<schema>.<table>}, kept as folders.
 *
 * <p>Registered as {@code spark.sql.catalog.<catalog>=crypto_assets_tests.standins.NamedDeltaCatalog}
 * with the option {@code warehouse} (a local folder). The schema {@code <catalog>.<schema>} is the
 * folder {@code <warehouse>/<catalog>__<schema>.db} (lower case), so two catalogs may hold schemas
 * of the same name, and a table is any folder in it with a {@code _delta_log}. No metastore keeps
 * the names, so any number of Spark applications can use the same warehouse at once.
 *
 * <p>Every table call is handed to a private Delta {@link DeltaCatalog} with the identifier turned
 * into Delta's path identifier {@code delta.`<table folder>`}; the delegate Delta's catalog needs
 * is the session catalog itself (not the {@code spark_catalog} plugin). Only one-part schemas
 * exist, as in Unity Catalog.
 */
public final class NamedDeltaCatalog implements StagingTableCatalog, SupportsNamespaces {
  /** Between the catalog and the schema in a schema's folder name. */
  public static final String SEPARATOR = "__";

  /** The catalog option naming the folder that keeps the schemas and their tables. */
  public static final String WAREHOUSE_OPTION = "warehouse";

  private static final String DELTA_LOG = "_delta_log";

  private String name;
  private String prefix;
  private Path warehouse;
  private DeltaCatalog delta;

  @Override
  public void initialize(String name, CaseInsensitiveStringMap options) {
    this.name = name;
    this.prefix = name.toLowerCase(Locale.ROOT) + SEPARATOR;
    String folder = options.get(WAREHOUSE_OPTION);
    if (folder == null) {
      throw new IllegalArgumentException(
          "spark.sql.catalog." + name + "." + WAREHOUSE_OPTION + " is not set");
    }
    this.warehouse = Paths.get(folder).toAbsolutePath();
    DeltaCatalog catalog = new DeltaCatalog();
    // Spark's own order for a catalog extension: initialize, then set the delegate.
    catalog.initialize(name, options);
    catalog.setDelegateCatalog(
        new V2SessionCatalog(SparkSession.active().sessionState().catalog()));
    this.delta = catalog;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public String[] defaultNamespace() {
    return new String[] {"default"};
  }

  // --- names ---------------------------------------------------------------------------------

  /** {@code namespace} with this catalog's name in front, for error messages. */
  private String[] qualified(String[] namespace) {
    String[] parts = new String[namespace.length + 1];
    parts[0] = name;
    System.arraycopy(namespace, 0, parts, 1, namespace.length);
    return parts;
  }

  /** The folder of the schema {@code namespace} (one part, else SCHEMA_NOT_FOUND). */
  private Path schemaDir(String[] namespace) {
    if (namespace.length != 1) {
      throw NamedDeltaCatalog.<RuntimeException>unchecked(
          new NoSuchNamespaceException(qualified(namespace)));
    }
    return warehouse.resolve(prefix + namespace[0].toLowerCase(Locale.ROOT) + ".db");
  }

  private Path tableDir(Identifier ident) {
    return schemaDir(ident.namespace()).resolve(ident.name().toLowerCase(Locale.ROOT));
  }

  /** What Delta is given for {@code ident}: the path identifier of the table's folder. */
  private Identifier resolved(Identifier ident) {
    return Identifier.of(new String[] {"delta"}, tableDir(ident).toString());
  }

  /** Spark's checked exceptions pass through methods that do not declare them (Scala style). */
  @SuppressWarnings("unchecked")
  private static <E extends Throwable> E unchecked(Throwable error) throws E {
    throw (E) error;
  }

  private void requireTable(Identifier ident) throws NoSuchTableException {
    if (!tableExists(ident)) {
      throw new NoSuchTableException(ident);
    }
  }

  /** Unity Catalog's check before a table is created or replaced: its schema exists. */
  private void requireSchema(Identifier ident) throws NoSuchNamespaceException {
    if (!namespaceExists(ident.namespace())) {
      throw new NoSuchNamespaceException(qualified(ident.namespace()));
    }
  }

  private void requireNew(Identifier ident)
      throws NoSuchNamespaceException, TableAlreadyExistsException {
    requireSchema(ident);
    if (tableExists(ident)) {
      throw new TableAlreadyExistsException(ident);
    }
  }

  private static List<Path> children(Path folder) {
    try (Stream<Path> found = Files.list(folder)) {
      return found.filter(Files::isDirectory).sorted().toList();
    } catch (IOException error) {
      throw new UncheckedIOException(error);
    }
  }

  private static void deleteTree(Path folder) {
    try (Stream<Path> found = Files.walk(folder)) {
      for (Path path : found.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(path);
      }
    } catch (IOException error) {
      throw new UncheckedIOException(error);
    }
  }

  // --- tables --------------------------------------------------------------------------------

  @Override
  public Set<TableCatalogCapability> capabilities() {
    return delta.capabilities();
  }

  @Override
  public boolean useNullableQuerySchema() {
    return delta.useNullableQuerySchema();
  }

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(qualified(namespace));
    }
    List<Identifier> named = new ArrayList<>();
    for (Path table : children(schemaDir(namespace))) {
      if (Files.isDirectory(table.resolve(DELTA_LOG))) {
        named.add(Identifier.of(namespace.clone(), table.getFileName().toString()));
      }
    }
    return named.toArray(new Identifier[0]);
  }

  @Override
  public Table loadTable(Identifier ident) throws NoSuchTableException {
    requireTable(ident);
    return delta.loadTable(resolved(ident));
  }

  @Override
  public Table loadTable(Identifier ident, Set<TableWritePrivilege> writePrivileges)
      throws NoSuchTableException {
    requireTable(ident);
    return delta.loadTable(resolved(ident), writePrivileges);
  }

  @Override
  public Table loadTable(Identifier ident, String version) throws NoSuchTableException {
    requireTable(ident);
    return delta.loadTable(resolved(ident), version);
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) throws NoSuchTableException {
    requireTable(ident);
    return delta.loadTable(resolved(ident), timestamp);
  }

  @Override
  public void invalidateTable(Identifier ident) {
    delta.invalidateTable(resolved(ident));
  }

  @Override
  public boolean tableExists(Identifier ident) {
    if (ident.namespace().length != 1) {
      return false;
    }
    return Files.isDirectory(tableDir(ident).resolve(DELTA_LOG));
  }

  @Override
  @SuppressWarnings("deprecation")
  public Table createTable(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    requireNew(ident);
    return delta.createTable(resolved(ident), schema, partitions, properties);
  }

  @Override
  public Table createTable(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    requireNew(ident);
    return delta.createTable(resolved(ident), columns, partitions, properties);
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) throws NoSuchTableException {
    requireTable(ident);
    return delta.alterTable(resolved(ident), changes);
  }

  @Override
  public boolean dropTable(Identifier ident) {
    if (!tableExists(ident)) {
      return false;
    }
    invalidateTable(ident);
    deleteTree(tableDir(ident)); // a managed table: its files go with its name
    return true;
  }

  @Override
  public boolean purgeTable(Identifier ident) {
    return dropTable(ident);
  }

  @Override
  public void renameTable(Identifier oldIdent, Identifier newIdent)
      throws NoSuchTableException, TableAlreadyExistsException {
    requireTable(oldIdent);
    if (tableExists(newIdent)) {
      throw new TableAlreadyExistsException(newIdent);
    }
    invalidateTable(oldIdent);
    try {
      Files.move(tableDir(oldIdent), tableDir(newIdent));
    } catch (IOException error) {
      throw new UncheckedIOException(error);
    }
  }

  // --- staged (atomic) CREATE / REPLACE ... AS SELECT ----------------------------------------

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageCreate(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    requireNew(ident);
    return delta.stageCreate(resolved(ident), schema, partitions, properties);
  }

  @Override
  public StagedTable stageCreate(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    requireNew(ident);
    return delta.stageCreate(resolved(ident), columns, partitions, properties);
  }

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageReplace(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException, NoSuchTableException {
    requireTable(ident);
    return delta.stageReplace(resolved(ident), schema, partitions, properties);
  }

  @Override
  public StagedTable stageReplace(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException, NoSuchTableException {
    requireTable(ident);
    return delta.stageReplace(resolved(ident), columns, partitions, properties);
  }

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageCreateOrReplace(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException {
    requireSchema(ident);
    return delta.stageCreateOrReplace(resolved(ident), schema, partitions, properties);
  }

  @Override
  public StagedTable stageCreateOrReplace(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException {
    requireSchema(ident);
    return delta.stageCreateOrReplace(resolved(ident), columns, partitions, properties);
  }

  @Override
  public CustomMetric[] supportedCustomMetrics() {
    return delta.supportedCustomMetrics();
  }

  // --- schemas -------------------------------------------------------------------------------

  @Override
  public String[][] listNamespaces() throws NoSuchNamespaceException {
    List<String[]> schemas = new ArrayList<>();
    if (Files.isDirectory(warehouse)) {
      for (Path folder : children(warehouse)) {
        String schema = folder.getFileName().toString();
        if (schema.startsWith(prefix) && schema.endsWith(".db")) {
          schemas.add(new String[] {schema.substring(prefix.length(), schema.length() - 3)});
        }
      }
    }
    return schemas.toArray(new String[0][]);
  }

  @Override
  public String[][] listNamespaces(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length == 0) {
      return listNamespaces();
    }
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(qualified(namespace));
    }
    return new String[0][]; // a schema holds no schemas
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    if (namespace.length != 1) {
      return false;
    }
    return Files.isDirectory(schemaDir(namespace));
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace)
      throws NoSuchNamespaceException {
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(qualified(namespace));
    }
    return Map.of(SupportsNamespaces.PROP_LOCATION, schemaDir(namespace).toUri().toString());
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    if (namespaceExists(namespace)) {
      throw new NamespaceAlreadyExistsException(qualified(namespace));
    }
    try {
      Files.createDirectories(schemaDir(namespace));
    } catch (IOException error) {
      throw new UncheckedIOException(error);
    }
  }

  @Override
  public void alterNamespace(String[] namespace, NamespaceChange... changes) {
    throw new UnsupportedOperationException("a schema kept as a folder has no properties");
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    if (!namespaceExists(namespace)) {
      return false;
    }
    if (!cascade && listTables(namespace).length > 0) {
      throw new NonEmptyNamespaceException(qualified(namespace));
    }
    deleteTree(schemaDir(namespace));
    return true;
  }
}
